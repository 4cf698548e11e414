/** Graceful stop on SIGINT/SIGTERM: finish in-flight work, close the database; a second signal forces. */
export function stopOnSignals(close: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) process.exit(130);
    stopping = true;
    console.error(`smsbridge: ${sig}, stopping…`);
    close().then(
      () => process.exit(0),
      (e: Error) => {
        console.error(`smsbridge: error while stopping: ${e.message}`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
}
