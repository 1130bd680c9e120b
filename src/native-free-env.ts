// Imported first by the entry points (the CLI, the package index) so that it runs before any
// module that reads these switches at load time: with FLOTILLA_NATIVE_FREE=1 every optional
// native accelerator is turned off, not only Flotilla's own (see native-free/README.md).
if (process.env.FLOTILLA_NATIVE_FREE === '1') {
  process.env.MSGPACKR_NATIVE_ACCELERATION_DISABLED ??= 'true';
  process.env.WS_NO_BUFFER_UTIL ??= '1';
  process.env.WS_NO_UTF_8_VALIDATE ??= '1';
}

export {};
