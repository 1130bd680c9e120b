// Where a group's state machine comes from: the built-in key-value service, or a factory the
// embedding program names by module (ShardTask.stateMachine), imported inside the worker; and
// for the meta group (META_GROUP), always the key map's own (withMetaGroup).
import { META_GROUP } from '../cluster/meta-group.js';
import { MetaStateMachine } from '../cluster/meta-state-machine.js';
import { createKvStateMachine } from '../kv/kv-service.js';
import type { StateMachineFactory } from './state-machine.js';
import type { StateMachineModule } from './task.js';

export const STATE_MACHINE_EXPORT_DEFAULT = 'createStateMachine';

export async function loadStateMachineFactory(spec: StateMachineModule | null): Promise<StateMachineFactory> {
  if (spec === null) return createKvStateMachine;
  const name = spec.export ?? STATE_MACHINE_EXPORT_DEFAULT;
  const mod = (await import(spec.module)) as Record<string, unknown>;
  const factory = mod[name];
  if (typeof factory !== 'function') {
    throw new Error(`state machine module ${spec.module} has no exported function ${name}`);
  }
  return factory as StateMachineFactory;
}

/**
 * `factory` for data groups, and the meta state machine for META_GROUP, which reports each new
 * map's image through `report` (the shard sends it to its main thread: Outbox.mapChanged).
 */
export function withMetaGroup(factory: StateMachineFactory, report: (image: Uint8Array) => void): StateMachineFactory {
  return (group) => group === META_GROUP ? new MetaStateMachine((map) => report(map.encode())) : factory(group);
}
