// The configuration keys of the wire's hardening (issue 12): wsOrigins checked as a list of
// origins, `self` or `*`, from env and flags like every key; clusterId 0 derived the same on
// every node of a cluster and differently for another cluster's addresses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, clusterIdOf, configDefaults, loadConfig, parsePeers } from '../../src/node/config.js';

test('wsOrigins: origins, self and * are accepted from env and flags; anything else is BAD_CONFIG naming the key', () => {
  assert.equal(configDefaults.wsOrigins, 'self');
  assert.equal(loadConfig({ env: { FLOTILLA_WS_ORIGINS: 'self, https://app.example:8443' } }).wsOrigins, 'self, https://app.example:8443');
  assert.equal(loadConfig({ flags: { 'ws-origins': '*' } }).wsOrigins, '*');
  assert.throws(() => loadConfig({ env: { FLOTILLA_WS_ORIGINS: 'evil.example' } }),
    (e: unknown) => e instanceof ConfigError && e.code === 'BAD_CONFIG' && /wsOrigins.*"evil\.example" is not an origin/.test(e.message));
  assert.equal(loadConfig({ flags: { 'frame-read-timeout-ms': '2500', 'link-handshake-timeout-ms': '700' } }).frameReadTimeoutMs, 2500);
});

test('clusterId: explicit wins; 0 derives one from the lowest-numbered node, equal on every node, different for another cluster', () => {
  const peers = parsePeers('1@10.0.0.1:7001:7002:7003:7004,2@10.0.0.2:7001:7002:7003:7004');
  const reversed = [...peers].reverse();
  const a = clusterIdOf({ clusterId: 0, peers });
  assert.equal(clusterIdOf({ clusterId: 0, peers: reversed }), a, 'order of peers does not matter');
  assert.notEqual(a, 0);
  const other = parsePeers('1@10.0.0.1:8001:8002:8003:8004,2@10.0.0.2:8001:8002:8003:8004');
  assert.notEqual(clusterIdOf({ clusterId: 0, peers: other }), a);
  assert.equal(clusterIdOf({ clusterId: 42, peers }), 42);
  assert.equal(loadConfig({ env: { FLOTILLA_CLUSTER_ID: '42' } }).clusterId, 42);
});
