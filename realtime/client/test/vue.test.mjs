import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";

import { effectScope, nextTick, watch } from "vue";

import { useWizardStatus } from "../src/vue.js";
import { WizardStatusClient } from "../src/wizard-status.js";
import { WS_URL as URL, flush, installBrowser, makeStatus } from "./fakes.mjs";

const status = (version, completed) => makeStatus(version, {
  progress: { completed, total: 6, percent: Math.round((100 * completed) / 6) },
});

let env;
beforeEach(() => { env = installBrowser(); });
afterEach(() => env.uninstall());

test("the composable's refs follow the client's state and newer statuses, and watchers fire", async () => {
  const client = new WizardStatusClient({ url: URL, shareAcrossTabs: false });
  await flush();
  const scope = effectScope();
  const seen = [];
  const refs = scope.run(() => {
    const result = useWizardStatus(client);
    watch(result.status, (value) => seen.push(value.version));
    return result;
  });
  assert.equal(refs.state.value, "connecting");
  assert.equal(refs.status.value, null);
  const [socket] = env.sockets;

  socket.accept();
  socket.receive(status(5, 2));
  socket.receive(status(4, 6));
  await nextTick();
  assert.equal(refs.state.value, "open");
  assert.equal(refs.status.value.version, 5);
  assert.equal(refs.status.value, client.status);
  assert.deepEqual(seen, [5]);

  scope.stop();
  assert.equal(client._listeners.status.size, 0);
  assert.equal(client.state, "open", "a client it was given is not closed");
  client.close();
});

test("given options, the composable owns its client and closes it with the scope", async () => {
  const scope = effectScope();
  const refs = scope.run(() => useWizardStatus({ url: URL, shareAcrossTabs: false }));
  await flush();
  const [socket] = env.sockets;
  socket.accept();
  socket.receive(status(1, 1));
  assert.equal(refs.status.value.progress.percent, 17);

  scope.stop();
  assert.equal(refs.client.state, "closed");
  assert.deepEqual(socket.closeCalls, [1000]);
  assert.equal(refs.state.value, "open", "no listener is left to move the ref");
});
