/**
 * The REST client for the nbprod server extension (/nbprod/api). ServerConnection adds the token
 * and the XSRF header, so every call goes through Jupyter's authentication.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { EventKind, RunStageState, StatusState } from './states';
import { TagParser, TagSchema } from './tags';

export interface StageInfo {
  name: string;
  notebook: string;
  cells: number[];
  after: string[];
  deps: string[];
  outs: string[];
  params: string[];
  upstream: string[];
  executed_notebook: string;
  report: string;
  /** Import statements of earlier stages of the notebook that this stage uses, run first in it. */
  carried_imports?: CarriedImport[];
  /** Functions and classes of earlier stages that this stage uses, defined first in it. */
  carried_definitions?: CarriedDefinition[];
}

export interface CarriedImport {
  source: string;
  stage: string;
  cell: number;
  line: number;
}

export interface CarriedDefinition {
  name: string;
  kind: 'function' | 'class';
  source: string;
  stage: string;
  cell: number;
  line: number;
}

/** A carried definition listed once, with the stages it is carried into. */
export interface CarriedDefinitionUse extends CarriedDefinition {
  notebook: string;
  into: string[];
}

export interface PipelineInfo {
  root: string;
  stages: StageInfo[];
  carried_definitions?: CarriedDefinitionUse[];
}

export interface StageStatus {
  name: string;
  state: StatusState; // compared with dvc.lock; a stage that failed in a run shows in the run's events
  reasons: string[];
}

export interface StatusInfo {
  root: string;
  running: string | null;
  stages: StageStatus[];
}

export interface RunEvent {
  event: EventKind | string; // other commands (retrain) add their own kinds
  stage?: string;
  cells?: number;
  index?: number;
  state?: RunStageState;
  duration?: number;
  metrics?: Record<string, unknown>;
  report?: string;
  notebook?: string;
  ok?: boolean;
  message?: string;
}

export interface RunState {
  id: string;
  running: boolean;
  returncode: number | null;
  events: RunEvent[];
  offset: number;
  message?: string;
}

export class NbprodApiError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

export class NbprodApi {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  schema(): Promise<TagSchema> {
    return this._request('schema');
  }

  pipeline(path: string): Promise<PipelineInfo> {
    return this._request('pipeline', { path });
  }

  status(path: string): Promise<StatusInfo> {
    return this._request('status', { path });
  }

  runs(path: string): Promise<{ runs: { id: string; running: boolean }[] }> {
    return this._request('runs', { path });
  }

  startRun(path: string, stages: string[], from: string | null, keepGoing = false): Promise<{ id: string }> {
    const body = { path, stages, from, keep_going: keepGoing }; // keep_going: `nbprod run --keep-going`
    return this._request('runs', {}, { method: 'POST', body: JSON.stringify(body) });
  }

  events(path: string, run: string, offset: number): Promise<RunState> {
    return this._request(`runs/${encodeURIComponent(run)}/events`, { path, offset: String(offset) });
  }

  cancel(path: string, run: string): Promise<{ cancelled: boolean }> {
    return this._request(`runs/${encodeURIComponent(run)}/cancel`, {}, {
      method: 'POST',
      body: JSON.stringify({ path })
    });
  }

  /** Write the stage's debug notebook (inputs from the DVC cache); returns its server-relative path. */
  debug(path: string, stage: string): Promise<{ notebook: string }> {
    return this._request('debug', {}, { method: 'POST', body: JSON.stringify({ path, stage }) });
  }

  /** The URL that serves a file of the server root (for HTML reports, opened in a new tab). */
  fileUrl(path: string): string {
    return URLExt.join(this.settings.baseUrl, 'files', URLExt.encodeParts(path));
  }

  private async _request<T>(endpoint: string, query: Record<string, string> = {}, init: RequestInit = {}): Promise<T> {
    const url =
      URLExt.join(this.settings.baseUrl, 'nbprod', 'api', endpoint) + URLExt.objectToQueryString(query);
    const response = await ServerConnection.makeRequest(url, init, this.settings);
    let data: any = null;
    try {
      data = await response.json();
    } catch {
      data = null;
    }
    if (!response.ok) {
      throw new NbprodApiError(data?.message ?? `${response.status} ${response.statusText}`, response.status);
    }
    return data as T;
  }
}

let parser: Promise<TagParser> | null = null;

/** The tag parser, built once from the schema the server exports. */
export function tagParser(api: NbprodApi): Promise<TagParser> {
  if (!parser) {
    parser = api.schema().then(schema => new TagParser(schema));
    parser.catch(() => {
      parser = null;
    });
  }
  return parser;
}
