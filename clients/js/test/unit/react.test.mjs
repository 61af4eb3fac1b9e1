// useJob: re-renders with the job's live view, and closes its watch on unmount.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createElement } from 'react';
import TestRenderer from 'react-test-renderer';
import { RelayProvider, useJob } from '../../dist/react.js';

globalThis.IS_REACT_ACT_ENVIRONMENT = true;

function fakeClient() {
  const watches = [];
  return {
    watches,
    jobs: {
      watch(id) {
        const l = new Set();
        const w = {
          id, closed: false, view: { id, state: 'queued', text: '' },
          onChange: (fn) => (l.add(fn), () => l.delete(fn)),
          close: () => (w.closed = true),
          set: (v) => { w.view = { ...w.view, ...v }; l.forEach((f) => f(w.view)); },
        };
        watches.push(w);
        return w;
      },
    },
  };
}

describe('useJob', () => {
  it('renders the live view and closes the watch when unmounted', async () => {
    const client = fakeClient();
    const seen = [];
    function Job({ id }) {
      const job = useJob(id);
      seen.push(job && `${job.id}:${job.state}:${job.text}`);
      return null;
    }
    let r;
    await TestRenderer.act(() => {
      r = TestRenderer.create(createElement(RelayProvider, { client }, createElement(Job, { id: 'j1' })));
    });
    assert.equal(seen.at(-1), 'j1:queued:');
    await TestRenderer.act(() => client.watches[0].set({ state: 'running', text: 'he' }));
    assert.equal(seen.at(-1), 'j1:running:he');
    await TestRenderer.act(() => r.update(createElement(RelayProvider, { client }, createElement(Job, { id: 'j2' }))));
    assert.equal(client.watches[0].closed, true, 'the previous job is no longer watched');
    assert.equal(seen.at(-1), 'j2:queued:');
    await TestRenderer.act(() => r.unmount());
    assert.equal(client.watches[1].closed, true);
  });

  it('is null without an id', async () => {
    const client = fakeClient();
    let got = 'unset';
    function Job() {
      got = useJob(null, client);
      return null;
    }
    await TestRenderer.act(() => {
      TestRenderer.create(createElement(Job));
    });
    assert.equal(got, null);
    assert.equal(client.watches.length, 0);
  });
});
