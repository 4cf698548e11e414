import { accessSync, constants } from "node:fs";

/**
 * Throws when the database file or its WAL index can no longer be written (read-only file system, immutable
 * file, permissions), before SQLite is asked to write. SQLite updates the WAL index (`-shm`) through a
 * memory map; once that file turned read-only, the first write to the map (e.g. starting the WAL over after a
 * checkpoint) is a SIGBUS that kills the process, where every other write would have been an error and a 503.
 * Two access(2) calls per write batch, a few microseconds.
 */
export function writableCheck(file: string): () => void {
  const paths = [file, `${file}-shm`];
  return () => {
    for (const p of paths) {
      try {
        accessSync(p, constants.W_OK);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "ENOENT") continue; // not created yet: SQLite will create it, or fail with an error
        throw Object.assign(new Error(`database file ${p} is not writable (${code})`), {
          code: "SQLITE_READONLY",
        });
      }
    }
  };
}
