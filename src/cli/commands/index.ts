import type { Command } from "commander";

/** Each command module adds itself to the program. One line per module. */
export const commands: Array<(program: Command) => void> = [];
