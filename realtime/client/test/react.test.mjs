import assert from "node:assert/strict";
import { afterEach, beforeEach, test } from "node:test";

import { createElement, StrictMode } from "react";
import TestRenderer from "react-test-renderer";

import { useWizardStatus, useWizardStatusClient } from "../src/react.js";
import { WizardStatusClient } from "../src/wizard-status.js";
import { WS_URL as URL, flush, installBrowser, makeStatus } from "./fakes.mjs";

const status = (version, completed) => makeStatus(version, {
  progress: { completed, total: 6, percent: Math.round((100 * completed) / 6) },
});

globalThis.IS_REACT_ACT_ENVIRONMENT = true;
const { act, create } = TestRenderer;
let env;

beforeEach(() => { env = installBrowser(); });
afterEach(() => env.uninstall());

function Checklist({ client }) {
  const { status: current, state } = useWizardStatus(client);
  return createElement("p", null, `${state}:${current ? current.progress.percent : "-"}`);
}

test("the hook renders the client's state and every newer status, never an older one", async () => {
  const client = new WizardStatusClient({ url: URL, shareAcrossTabs: false });
  let view;
  await act(async () => { view = create(createElement(Checklist, { client })); await flush(); });
  assert.equal(view.toJSON().children[0], "connecting:-");
  const [socket] = env.sockets;

  await act(async () => { socket.accept(); socket.receive(status(3, 4)); });
  assert.equal(view.toJSON().children[0], "open:67");
  await act(async () => socket.receive(status(2, 1)));
  assert.equal(view.toJSON().children[0], "open:67");
  await act(async () => socket.receive(status(4, 6)));
  assert.equal(view.toJSON().children[0], "open:100");

  await act(async () => view.unmount());
  assert.equal(client._listeners.status.size, 0);
  assert.equal(client._listeners.state.size, 0);
  client.close();
});

test("useWizardStatusClient makes one client after mount and closes it on unmount, also in StrictMode", async () => {
  function Owner() {
    const client = useWizardStatusClient({ url: URL, shareAcrossTabs: false, token: () => "t0k3n" });
    return createElement(Checklist, { client });
  }
  let view;
  await act(async () => {
    view = create(createElement(StrictMode, null, createElement(Owner)));
    await flush();
  });
  // StrictMode mounts, unmounts and mounts again: the first client is closed for good.
  const live = env.sockets.filter((socket) => socket.closeCalls.length === 0);
  assert.equal(live.length, 1);
  assert.equal(live[0].url, `${URL}?token=t0k3n`);

  await act(async () => { live[0].accept(); live[0].receive(status(1, 3)); });
  assert.equal(view.toJSON().children[0], "open:50");

  await act(async () => view.unmount());
  assert.deepEqual(live[0].closeCalls, [1000]);
});
