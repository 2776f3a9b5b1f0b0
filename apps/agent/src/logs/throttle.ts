/**
 * `report`, at most once per `everyMs` for each message (a Redis behind a proxy that accepts and drops connections
 * makes the client fail every few milliseconds, alternating between a few messages); `suppressed` counts the
 * occurrences left out since that message was last reported. Remembers at most `maxMessages` messages.
 */
export function throttled(
  report: (error: Error, suppressed: number) => void,
  everyMs: number,
  now: () => number = Date.now,
  maxMessages = 32,
): (error: Error) => void {
  const seen = new Map<string, { at: number; suppressed: number }>();
  return (error) => {
    const at = now();
    const entry = seen.get(error.message);
    if (entry && at - entry.at < everyMs) {
      entry.suppressed++;
      return;
    }
    report(error, entry?.suppressed ?? 0);
    seen.delete(error.message);
    seen.set(error.message, { at, suppressed: 0 });
    if (seen.size > maxMessages) seen.delete(seen.keys().next().value as string);
  };
}
