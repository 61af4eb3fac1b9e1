import { createContext, createElement, useContext, useEffect, useState, type ReactNode } from 'react';
import type { RelayClient } from './core.js';
import type { JobView } from './jobs.js';

const Ctx = createContext<RelayClient | null>(null);

/** Makes a client available to `useJob` below it. */
export function RelayProvider(props: { client: RelayClient; children?: ReactNode }) {
  return createElement(Ctx.Provider, { value: props.client }, props.children);
}

/**
 * The live view of one job (state, progress, logs, text, result, error),
 * re-rendered on every change; `null` while there is no id. The client
 * comes from `RelayProvider`, or is given.
 */
export function useJob(id: string | null | undefined, client?: RelayClient): JobView | null {
  const fromContext = useContext(Ctx);
  const c = client ?? fromContext;
  const [view, setView] = useState<JobView | null>(null);
  useEffect(() => {
    if (!id || !c) {
      setView(null);
      return;
    }
    const w = c.jobs.watch(id);
    setView(w.view);
    const off = w.onChange(setView);
    return () => {
      off();
      w.close();
    };
  }, [c, id]);
  return view && view.id === id ? view : null;
}
