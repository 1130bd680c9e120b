// Where a group's state machine comes from: the built-in key-value service, or a factory the
// embedding program names by module (ShardTask.stateMachine), imported inside the worker.
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
