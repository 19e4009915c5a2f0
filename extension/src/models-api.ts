/**
 * The REST client of the Models panel (/nbprod/api/models, and /nbprod/api/runs for following and
 * cancelling a retrain). ServerConnection adds the token and the XSRF header. The approver is never
 * sent: the server takes it from the authenticated user (a typed `name` only counts on a server with
 * one shared token, and the record says so).
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { EventKind } from './states';

export type Metrics = Record<string, Record<string, number>>;

export interface GateResult {
  gate: string;
  passed: boolean | null; // null: not checked (no champion yet)
  value: number | null;
  threshold: number | null;
  note: string;
}

export interface Candidate {
  id: string;
  commit: string;
  created: string;
  note: string;
  base: string;
  params_set: Record<string, unknown>;
  files_from_working_tree: string[];
  data_sources: string[];
  gates: GateResult[];
  gates_passed: boolean;
  metrics: Metrics;
  champion: { version: string; scored: string; same_holdout: boolean; metrics_on_holdout: Metrics } | null;
  report: string | null;
}

export interface Identity {
  source: string;
  username: string;
  display_name: string;
  typed_name?: string;
}

export interface Production {
  version: string;
  commit: string;
  tag: string;
  since: string;
  by: string | null;
  note: string | null;
  action: string;
  identity: Identity | null;
  metrics: Metrics;
}

export interface HistoryEvent {
  date: string;
  action: string; // approve | reject | rollback | register | assign
  version: string | null;
  tag: string;
  commit: string;
  when?: string;
  by?: string;
  note?: string;
  candidate?: string;
  override?: string | null;
  from?: string | null;
  kept?: string | null;
  identity?: Identity;
}

export interface VersionSummary {
  version: string;
  commit: string;
  tag: string;
  date: string;
  kind: string;
  in_production: boolean;
}

export interface ModelsOverview {
  root: string;
  model: string;
  model_path: string;
  gate_metrics: string[];
  production: Production | null;
  candidates: Candidate[];
  versions: VersionSummary[];
  history: HistoryEvent[];
  running: string | null;
  user: { username: string; display_name: string; shared_token: boolean };
}

export interface Change {
  kind: 'metric' | 'param' | 'data';
  name: string;
  now: unknown;
  then: unknown;
}

export interface VersionDetails {
  version: string;
  commit: string;
  tag: string;
  date: string;
  record: Record<string, any>;
  stage: string | null;
  cmd: string | null;
  model_path: string;
  model_md5: string | null;
  params: Record<string, unknown>;
  inputs: Record<string, string>;
  metrics: Metrics;
  environment: { python?: string; packages_sha256?: string } | null;
  changes: Change[];
}

export interface RunEventLine {
  event: EventKind; // generated from nbprod.core.stagerun.EventKind
  stage?: string;
  cells?: number;
  index?: number;
  message?: string | null;
  candidate?: string;
  gates_passed?: boolean;
  ok?: boolean;
}

export interface RunProgress {
  id: string;
  running: boolean;
  returncode: number | null;
  events: RunEventLine[];
  offset: number;
  message?: string;
}

export interface Decision {
  note: string;
  override?: string;
  name?: string;
}

export class ModelsApiError extends Error {
  constructor(
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

export class ModelsApi {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  overview(path: string): Promise<ModelsOverview> {
    return this._request('models', { path });
  }

  version(path: string, version: string): Promise<VersionDetails> {
    return this._request(`models/versions/${encodeURIComponent(version)}`, { path });
  }

  retrain(path: string, note: string, set: string[]): Promise<{ id: string }> {
    return this._post('models/retrain', { path, note, set });
  }

  approve(path: string, candidate: string, decision: Decision): Promise<{ version: string; by: string }> {
    return this._post('models/approve', { path, candidate, ...decision });
  }

  reject(path: string, candidate: string, decision: Decision): Promise<{ tag: string; by: string }> {
    return this._post('models/reject', { path, candidate, ...decision });
  }

  rollback(path: string, version: string, decision: Decision): Promise<{ version: string; kept: string | null }> {
    return this._post('models/rollback', { path, version, ...decision });
  }

  events(path: string, run: string, offset: number): Promise<RunProgress> {
    return this._request(`runs/${encodeURIComponent(run)}/events`, { path, offset: String(offset) });
  }

  cancel(path: string, run: string): Promise<{ cancelled: boolean }> {
    return this._post(`runs/${encodeURIComponent(run)}/cancel`, { path });
  }

  /** The comparison report of a candidate, served by the extension (it lives in the hidden .nbprod/). */
  reportUrl(path: string, candidate: string): string {
    return (
      URLExt.join(this.settings.baseUrl, 'nbprod', 'api', 'models', 'candidates', encodeURIComponent(candidate), 'report') +
      URLExt.objectToQueryString({ path })
    );
  }

  private _post<T>(endpoint: string, body: object): Promise<T> {
    return this._request(endpoint, {}, { method: 'POST', body: JSON.stringify(body) });
  }

  private async _request<T>(endpoint: string, query: Record<string, string> = {}, init: RequestInit = {}): Promise<T> {
    const url = URLExt.join(this.settings.baseUrl, 'nbprod', 'api', endpoint) + URLExt.objectToQueryString(query);
    const response = await ServerConnection.makeRequest(url, init, this.settings);
    let data: any = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      throw new ModelsApiError(data?.message ?? `${response.status} ${response.statusText}`, response.status);
    }
    return data as T;
  }
}
