// The meta group's state machine (issue 15): the key map (key-map.ts), replicated. Each command
// (layouts in meta-command.ts and docs/key-map.md) names the map version its sender saw; a
// command whose version is not the map's is answered VERSION_MISMATCH with the current version
// and changes nothing, so two operators (or an operator and the placement logic) that act on
// the same map cannot both win: the second re-reads and decides again. A command the map's rules
// refuse is answered with the rule's code (NO_SUCH_GROUP, SLOT_MIGRATING, ...) and changes
// nothing; a command that is not one is answered BAD_COMMAND. Apply never throws on bad input:
// every replica must reach the same state from what its peers accepted (state-machine.ts).
//
// The state is the map and nothing else, so the snapshot image is the map's image (canonical:
// replicas that applied the same commands give byte-equal images) and a restored replica is
// the replica it was. A node hosts it as group META_GROUP (meta-group.ts); `onChange` tells the
// shard of every new map (an applied change, a restored snapshot) so that it can report the map
// to the node's main thread (docs/key-map.md, "How nodes keep the map").
import type { StateMachine } from '../shard/state-machine.js';
import { KeyMap, KeyMapError, decodeKeyMap } from './key-map.js';
import { MapBytesError } from './map-bytes.js';
import { SLOT_COUNT } from './slots.js';
import {
  decodeMetaCommand,
  decodeMetaQuery,
  encodeMetaResult,
  encodeOwnerAnswer,
  encodeVersionAnswer,
  metaCommandBytesMax,
  type MetaCommand,
  type MetaErrorCode,
} from './meta-command.js';

export class MetaStateMachine implements StateMachine {
  private current = KeyMap.empty();

  /** onChange: called with the map after each command that changed it and after each restore. */
  constructor(private readonly onChange: ((map: KeyMap) => void) | null = null) {}

  /** The map as the commands applied so far made it. */
  get map(): KeyMap {
    return this.current;
  }

  admit(command: Uint8Array): string | null {
    return command.length > metaCommandBytesMax ? `a meta command of ${command.length} bytes, more than ${metaCommandBytesMax}` : null;
  }

  apply(command: Uint8Array, _index: number): Uint8Array {
    const map = this.current;
    if (command.length === 0) return encodeMetaResult({ ok: true, version: map.version });
    let c: MetaCommand;
    try {
      c = decodeMetaCommand(command);
    } catch (e) {
      if (e instanceof MapBytesError) return this.error('BAD_COMMAND', e.message);
      throw e;
    }
    if (c.expect !== map.version) {
      return this.error('VERSION_MISMATCH', `the command expects map version ${c.expect}, the map is at ${map.version}`);
    }
    try {
      this.current = change(map, c);
    } catch (e) {
      if (e instanceof KeyMapError) return this.error(e.code, e.message);
      throw e;
    }
    this.onChange?.(this.current);
    return encodeMetaResult({ ok: true, version: this.current.version });
  }

  private error(code: MetaErrorCode, message: string): Uint8Array {
    return encodeMetaResult({ ok: false, version: this.current.version, code, message });
  }

  /** Answers a query (meta-command.ts); throws MapBytesError BAD_QUERY on a malformed one. */
  query(command: Uint8Array): Uint8Array {
    const q = decodeMetaQuery(command);
    const map = this.current;
    switch (q.q) {
      case 'map':
        return map.encode();
      case 'version':
        return encodeVersionAnswer(map.version);
      case 'owner': {
        if (q.slot >= SLOT_COUNT) throw new MapBytesError('BAD_QUERY', `slot ${q.slot} is out of range 0-${SLOT_COUNT - 1}`);
        const m = map.migrationOf(q.slot);
        return encodeOwnerAnswer({
          version: map.version,
          group: map.ownerOf(q.slot),
          migration: m === undefined ? null : { id: m.id, to: m.to, state: m.state },
        });
      }
    }
  }

  snapshot(): Uint8Array {
    return this.current.encode();
  }

  /** Throws KeyMapError BAD_MAP for an image that is not a map. */
  restore(image: Uint8Array): void {
    this.current = decodeKeyMap(image);
    this.onChange?.(this.current);
  }
}

/** The map after a command whose version matched; throws KeyMapError when a rule refuses it. */
function change(map: KeyMap, c: MetaCommand): KeyMap {
  switch (c.op) {
    case 'initialize':
      return map.initialize(c.groups, c.nodes);
    case 'assign-slots':
      return map.assignSlots(c.slots, c.group);
    case 'begin-migration':
      return map.beginMigration(c.slots, c.to);
    case 'cutover-migration':
      return map.cutoverMigration(c.id);
    case 'finish-migration':
      return map.finishMigration(c.id);
    case 'abort-migration':
      return map.abortMigration(c.id);
    case 'add-group':
      return map.addGroup(c.group, c.members);
    case 'remove-group':
      return map.removeGroup(c.group);
    case 'add-member':
      return map.addMember(c.group, c.node);
    case 'remove-member':
      return map.removeMember(c.group, c.node);
    case 'set-node-addresses':
      return map.setNodeAddresses(c.node, c.addresses);
    case 'remove-node':
      return map.removeNode(c.node);
  }
}

/** Makes the meta group's state machine (a StateMachineFactory's shape, for the shard worker). */
export function createMetaStateMachine(): StateMachine {
  return new MetaStateMachine();
}
