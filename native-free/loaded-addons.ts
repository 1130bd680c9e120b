// The native add-ons (`.node` shared objects) loaded into this process so far, by any thread:
// worker threads share the process, so the one list covers the shard workers too. Read from the
// diagnostic report rather than the require cache, which misses a binary loaded in a worker
// and anything loaded with process.dlopen directly.

export function loadedAddons(): string[] {
  const report = process.report as NodeJS.ProcessReport & { excludeNetwork?: boolean };
  // The report would otherwise resolve the address of every open socket (Node 20.13 and later).
  const excluded = report.excludeNetwork;
  report.excludeNetwork = true;
  try {
    const objects = (report.getReport() as { sharedObjects?: unknown }).sharedObjects;
    if (!Array.isArray(objects)) throw new Error('the diagnostic report lists no shared objects on this platform');
    return objects.filter((f): f is string => typeof f === 'string' && f.endsWith('.node'));
  } finally {
    report.excludeNetwork = excluded;
  }
}
