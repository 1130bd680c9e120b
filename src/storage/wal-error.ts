// The log's errors and counters, shared by its parts (wal.ts and the files it is made of).

export type WalErrorCode = 'WAL_CORRUPT' | 'WAL_NO_SPACE' | 'WAL_IO' | 'WAL_FAILED' | 'WAL_CLOSED';

export class WalError extends Error {
  constructor(readonly code: WalErrorCode, message: string, readonly file?: string, readonly offset?: number, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface WalStats {
  batches: number;
  bytes: number;
  fsyncs: number;
  segments: number;
  segmentsDeleted: number;
  /** New segments that reused a deleted one's file (already allocated: its syncs write no size). */
  segmentsRecycled: number;
  groupsRewritten: number;
  failures: number;
  /** Tries of a batch that met a full disk (each is cut back, held and tried again). */
  noSpaceRetries: number;
  /** Bytes of zeros written to reserve space ahead of frames. */
  bytesReserved: number;
  /** Background fdatasyncs of space reserved ahead of the frames (wal-sync.ts syncReserved). */
  reserveSyncs: number;
  lastError: string | null;
  /** Sum and count of fdatasync durations (ms), for a mean; the engine keeps histograms. */
  fsyncMsTotal: number;
}

export function newWalStats(): WalStats {
  return {
    batches: 0, bytes: 0, fsyncs: 0, segments: 0, segmentsDeleted: 0, segmentsRecycled: 0, groupsRewritten: 0,
    failures: 0, noSpaceRetries: 0, bytesReserved: 0, reserveSyncs: 0, lastError: null, fsyncMsTotal: 0,
  };
}
