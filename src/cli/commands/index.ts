import type { Command } from "commander";
import { register as checkConfig } from "./check-config.js";
import { register as dead } from "./dead.js";
import { register as dev } from "./dev.js";
import { register as migrate } from "./migrate.js";
import { register as prune } from "./prune.js";
import { register as sandbox } from "./sandbox.js";
import { register as send } from "./send.js";
import { register as serve } from "./serve.js";
import { register as sign } from "./sign.js";
import { register as status } from "./status.js";
import { register as verify } from "./verify.js";

/** Each command module adds itself to the program. One line per module. */
export const commands: Array<(program: Command) => void> = [
  sign,
  verify,
  send,
  serve,
  dev,
  sandbox,
  migrate,
  status,
  dead,
  prune,
  checkConfig,
];
