// Reading one snapshot back: the header verified at open (`openSnapshotFile`), the data
// verified chunk by chunk as it streams, and the trailer's totals at the end.
import type { FileHandle, FileSystem } from '../io/file-system.js';
import { assert } from '../util/assert.js';
import type { ConfState, NodeId, SnapshotMeta } from '../raft/types.js';
import { crc32 } from './checksum.js';
import {
  bytesPerChunkLimit, confIdsMax, frameBytes, headerFixedBytes, hex, magic, readU64, SnapshotCorruptError, snapshotFormatVersion, trailerBytes,
} from './snapshot-format.js';
import { noop, readAt } from './snapshot-io.js';

export interface SnapshotReader {
  readonly meta: SnapshotMeta;
  readonly file: string;
  readonly fileBytes: number;
  /**
   * The data, chunk by chunk, each verified before it is yielded. The stream as a whole is
   * verified only when the iteration ends without throwing: treat what came before as
   * provisional. May be iterated once; closes the file when it ends, throws or is broken off.
   */
  chunks(): AsyncIterable<Uint8Array>;
  /** Closes the file. Safe to call more than once. */
  close(): Promise<void>;
}

export class Reader implements SnapshotReader {
  private streamed = false;
  private closed = false;

  constructor(
    readonly meta: SnapshotMeta,
    readonly file: string,
    readonly fileBytes: number,
    private readonly fh: FileHandle,
    private readonly dataStart: number,
    private readonly chunkMax: number,
  ) {}

  chunks(): AsyncIterable<Uint8Array> {
    assert(!this.streamed, `snapshot reader for ${this.file}: chunks() may be iterated once`);
    this.streamed = true;
    return this.stream();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
  }

  private async *stream(): AsyncGenerator<Uint8Array> {
    try {
      const { file, fileBytes } = this;
      const frame = Buffer.alloc(trailerBytes);
      let pos = this.dataStart;
      let dataBytes = 0;
      let dataCrc = 0;
      for (;;) {
        assert(!this.closed, `snapshot reader for ${file} closed while streaming`);
        await readAt(this.fh, file, fileBytes, frame, frameBytes, pos, 'a chunk header');
        const length = frame.readUInt32LE(0);
        if (length === 0) break;
        if (length > this.chunkMax) {
          throw new SnapshotCorruptError(file, pos, `chunk length ${length} exceeds the writer's bound of ${this.chunkMax}`);
        }
        const data = new Uint8Array(length);
        await readAt(this.fh, file, fileBytes, data, length, pos + frameBytes, 'chunk data', pos);
        const crcStored = frame.readUInt32LE(4);
        const crcActual = crc32(data, crc32(frame.subarray(0, 4)));
        if (crcStored !== crcActual) {
          throw new SnapshotCorruptError(file, pos, `chunk CRC mismatch (stored ${hex(crcStored)}, computed ${hex(crcActual)})`);
        }
        dataCrc = crc32(data, dataCrc);
        dataBytes += length;
        pos += frameBytes + length;
        yield data;
      }
      await readAt(this.fh, file, fileBytes, frame, trailerBytes, pos, 'the trailer');
      const trailerCrcStored = frame.readUInt32LE(16);
      const trailerCrcActual = crc32(frame.subarray(0, 16));
      if (trailerCrcStored !== trailerCrcActual) {
        throw new SnapshotCorruptError(file, pos, `trailer CRC mismatch (stored ${hex(trailerCrcStored)}, computed ${hex(trailerCrcActual)})`);
      }
      const dataBytesStored = readU64(frame, 4);
      if (dataBytesStored !== dataBytes) {
        throw new SnapshotCorruptError(file, pos, `the trailer counts ${dataBytesStored} data bytes, the chunks hold ${dataBytes}`);
      }
      const dataCrcStored = frame.readUInt32LE(12);
      if (dataCrcStored !== dataCrc) {
        throw new SnapshotCorruptError(file, pos, `data CRC mismatch (stored ${hex(dataCrcStored)}, computed ${hex(dataCrc)})`);
      }
      const end = pos + trailerBytes;
      if (end !== fileBytes) {
        throw new SnapshotCorruptError(file, end, `${fileBytes - end} unexpected bytes after the trailer`);
      }
    } finally {
      await this.close();
    }
  }
}

export async function openSnapshotFile(fs: FileSystem, file: string, index: number, term: number): Promise<Reader> {
  const fh = await fs.promises.open(file, 'r');
  try {
    const fileBytes = (await fh.stat()).size;
    const fixed = Buffer.alloc(headerFixedBytes);
    await readAt(fh, file, fileBytes, fixed, headerFixedBytes, 0, 'the header');
    if (!fixed.subarray(0, magic.length).equals(magic)) {
      throw new SnapshotCorruptError(file, 0, 'bad magic: not a Flotilla snapshot file');
    }
    const counts = [32, 36, 40, 44].map((at) => fixed.readUInt32LE(at));
    const ids = counts.reduce((a, b) => a + b, 0);
    if (ids > confIdsMax) {
      throw new SnapshotCorruptError(file, 32, `the header lists ${ids} node ids, more than ${confIdsMax}`);
    }
    const header = Buffer.alloc(headerFixedBytes + 4 * ids + 4);
    fixed.copy(header);
    await readAt(fh, file, fileBytes, header.subarray(headerFixedBytes), header.length - headerFixedBytes, headerFixedBytes, 'the header', 0);
    const crcAt = header.length - 4;
    const crcStored = header.readUInt32LE(crcAt);
    const crcActual = crc32(header.subarray(0, crcAt));
    if (crcStored !== crcActual) {
      throw new SnapshotCorruptError(file, 0, `header CRC mismatch (stored ${hex(crcStored)}, computed ${hex(crcActual)})`);
    }
    const version = header.readUInt32LE(8);
    if (version !== snapshotFormatVersion) {
      throw new SnapshotCorruptError(file, 8, `unsupported format version ${version} (this build reads ${snapshotFormatVersion})`);
    }
    const chunkMax = header.readUInt32LE(12);
    if (chunkMax < 1 || chunkMax > bytesPerChunkLimit) {
      throw new SnapshotCorruptError(file, 12, `bytesPerChunkMax ${chunkMax} is outside 1..${bytesPerChunkLimit}`);
    }
    const metaIndex = readU64(header, 16);
    const metaTerm = readU64(header, 24);
    if (metaIndex !== index || metaTerm !== term) {
      throw new SnapshotCorruptError(file, 16, `the header says index ${metaIndex} term ${metaTerm}, the name says index ${index} term ${term}`);
    }
    let at = headerFixedBytes;
    const lists: NodeId[][] = counts.map((count) => {
      const list: NodeId[] = [];
      for (let i = 0; i < count; i++, at += 4) list.push(header.readUInt32LE(at));
      return list;
    });
    const conf: ConfState = { voters: lists[0]!, votersOutgoing: lists[1]!, learners: lists[2]!, learnersNext: lists[3]! };
    return new Reader({ index, term, conf }, file, fileBytes, fh, header.length, chunkMax);
  } catch (err) {
    await fh.close().catch(noop);
    throw err;
  }
}
