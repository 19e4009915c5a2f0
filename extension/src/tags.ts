/**
 * Cell tag logic: parse, validate and edit nbprod tags against the schema JSON that the Python side
 * exports (nbprod/schema/tags.json). Pure functions with no JupyterLab imports, so node can test them.
 */

export interface TagSpec {
  kind: string;
  tag?: string;
  prefix?: string;
  value: 'name' | 'path' | null;
  role: boolean;
  description: string;
}

export interface TagSchema {
  version: number;
  name_pattern: string;
  path_pattern: string;
  tags: TagSpec[];
  rules: string[];
}

export type Role = 'parameters' | 'stage' | 'shared' | 'skip';

export interface CellTags {
  role: Role | null;
  stage: string | null;
  after: string[];
  deps: string[];
  outs: string[];
  metrics: string[];
  plots: string[];
}

export interface TagProblem {
  tag: string;
  message: string;
  fix: string;
}

export type ParseResult =
  | { ok: true; tags: CellTags }
  | { ok: false; error: TagProblem };

/** What a cell's chip shows: its stage, or the role that keeps it out of a single stage. */
export interface CellPlace {
  kind: 'stage' | 'parameters' | 'shared' | 'skip' | 'invalid';
  stage: string | null;
  /** The cell itself carries stage:NAME (it starts the stage). */
  starts: boolean;
  error: TagProblem | null;
}

const IO_KINDS = ['after', 'deps', 'outs', 'metrics', 'plots'] as const;
export type IoKind = (typeof IO_KINDS)[number];

/** A tag parser bound to one schema; the same decisions as nbprod.notebooks.tags.parse_cell_tags. */
export class TagParser {
  constructor(readonly schema: TagSchema) {
    this._name = new RegExp(schema.name_pattern);
    this._path = new RegExp(schema.path_pattern);
    for (const spec of schema.tags) {
      if (spec.tag !== undefined) {
        this._flags.set(spec.tag, spec);
      }
      if (spec.prefix !== undefined) {
        this._prefixed.set(spec.prefix, spec);
      }
      this._reserved.add(spec.kind);
    }
  }

  /** The role tags a cell can carry (one at most). */
  get roleKinds(): string[] {
    return this.schema.tags.filter(t => t.role).map(t => t.kind);
  }

  isValidName(name: string): boolean {
    return this._name.test(name);
  }

  /** Why a tag path is not a safe project-relative path, or null when it is. */
  pathProblem(value: string): string | null {
    if (!value) {
      return 'is empty';
    }
    if (value.startsWith('/') || /^[A-Za-z]:/.test(value) || value.startsWith('~')) {
      return 'is absolute';
    }
    if (!this._path.test(value)) {
      return 'holds characters outside A-Z a-z 0-9 _ . - /';
    }
    const parts = value.split('/');
    const last = parts[parts.length - 1];
    if (parts.slice(0, -1).some(p => p === '' || p === '.') || last === '' || last === '.') {
      return "has an empty or '.' segment";
    }
    return null;
  }

  /** Parse one cell's tags; report the first tag that breaks the schema. */
  parse(tags: readonly unknown[]): ParseResult {
    const parsed: CellTags = {
      role: null,
      stage: null,
      after: [],
      deps: [],
      outs: [],
      metrics: [],
      plots: []
    };
    for (const tag of tags) {
      if (typeof tag !== 'string') {
        return fail(String(tag), `tag ${pyReprValue(tag)} is not a string`, 'make every tag a string');
      }
      const problem = this._parseOne(parsed, tag);
      if (problem) {
        return { ok: false, error: problem };
      }
    }
    return { ok: true, tags: parsed };
  }

  /** Tags with the cell's role replaced (null removes it); other tags keep their order. */
  withRole(tags: readonly string[], role: Role | null, stage?: string): string[] {
    const kept = tags.filter(t => !this.isRoleTag(t));
    if (role === null) {
      return kept;
    }
    if (role === 'stage') {
      if (!stage || !this.isValidName(stage)) {
        throw new Error(`invalid stage name ${JSON.stringify(stage)}`);
      }
      return [this._prefixOf('stage') + stage, ...kept];
    }
    return [this._flagOf(role), ...kept];
  }

  /** Tags with one after:/deps:/outs:/metrics:/plots: tag added (no duplicates). */
  withIo(tags: readonly string[], kind: IoKind, value: string): string[] {
    const spec = this._specOf(kind);
    const problem =
      spec.value === 'name'
        ? this.isValidName(value)
          ? null
          : 'is not a valid stage name'
        : this.pathProblem(value);
    if (problem) {
      throw new Error(`${kind}:${value} ${problem}`);
    }
    const tag = this._prefixOf(kind) + value;
    return tags.includes(tag) ? [...tags] : [...tags, tag];
  }

  /** Tags with stage:OLD and after:OLD renamed to NEW. */
  renameStage(tags: readonly string[], from: string, to: string): string[] {
    if (!this.isValidName(to)) {
      throw new Error(`invalid stage name ${JSON.stringify(to)}`);
    }
    const stage = this._prefixOf('stage');
    const after = this._prefixOf('after');
    return tags.map(t => (t === stage + from ? stage + to : t === after + from ? after + to : t));
  }

  isRoleTag(tag: string): boolean {
    const flag = this._flags.get(tag);
    if (flag) {
      return flag.role;
    }
    const spec = this._prefixed.get(tag.split(':')[0] + ':');
    return !!spec && spec.role && tag.includes(':');
  }

  /** The nbprod tags a cell carries for one I/O kind, e.g. all deps: tags. */
  ioTags(tags: readonly string[]): string[] {
    const prefixes = IO_KINDS.map(k => this._prefixOf(k));
    return tags.filter(t => prefixes.some(p => t.startsWith(p)));
  }

  /**
   * Where each code cell of a notebook belongs, following the schema's rules: a stage:NAME cell
   * starts a stage, untagged cells join the stage before them, cells before the first stage tag
   * join the first stage, and a notebook without stage tags is one stage named after the notebook.
   */
  placeCells(cells: readonly (readonly unknown[])[], notebookStem: string): CellPlace[] {
    const places: CellPlace[] = [];
    let current: string | null = null;
    const pending: CellPlace[] = [];
    for (const tags of cells) {
      const result = this.parse(tags);
      if (!result.ok) {
        places.push({ kind: 'invalid', stage: null, starts: false, error: result.error });
        continue;
      }
      const role = result.tags.role;
      if (role === 'parameters' || role === 'shared' || role === 'skip') {
        places.push({ kind: role, stage: null, starts: false, error: null });
        continue;
      }
      if (role === 'stage') {
        current = result.tags.stage;
        for (const early of pending) {
          early.stage = current;
        }
        pending.length = 0;
        places.push({ kind: 'stage', stage: current, starts: true, error: null });
        continue;
      }
      const place: CellPlace = { kind: 'stage', stage: current, starts: false, error: null };
      if (current === null) {
        pending.push(place);
      }
      places.push(place);
    }
    const whole = notebookStageName(notebookStem);
    for (const early of pending) {
      early.stage = whole;
    }
    return places;
  }

  private _parseOne(parsed: CellTags, tag: string): TagProblem | null {
    if (this._flags.has(tag)) {
      return this._setRole(parsed, tag, tag as Role, null);
    }
    const colon = tag.indexOf(':');
    const prefix = colon < 0 ? tag : tag.slice(0, colon);
    const spec = this._prefixed.get(prefix + ':');
    if (colon >= 0 && spec) {
      return this._addPrefixed(parsed, spec, tag.slice(colon + 1), tag);
    }
    const word = prefix.trim().toLowerCase();
    if (this._reserved.has(word) || this._flags.has(tag.trim().toLowerCase())) {
      return {
        tag,
        message: `tag ${pyRepr(tag)} looks like an nbprod tag but is not one`,
        fix:
          'use one of: parameters, shared, skip, stage:NAME, after:NAME, deps:PATH, ' +
          'outs:PATH, metrics:PATH, plots:PATH'
      };
    }
    return null;
  }

  private _setRole(parsed: CellTags, tag: string, role: Role, stage: string | null): TagProblem | null {
    if (parsed.role !== null) {
      const first = parsed.role === 'stage' ? `stage:${parsed.stage}` : parsed.role;
      const second = role === 'stage' ? `stage:${stage}` : role;
      return {
        tag,
        message: `cell is tagged both ${pyRepr(first)} and ${pyRepr(second)}`,
        fix: 'keep one of parameters, stage:NAME, shared, skip on a cell'
      };
    }
    parsed.role = role;
    parsed.stage = stage;
    return null;
  }

  private _addPrefixed(parsed: CellTags, spec: TagSpec, value: string, tag: string): TagProblem | null {
    if (spec.value === 'name') {
      if (!this.isValidName(value)) {
        return {
          tag,
          message: `${pyRepr(tag)} has an invalid stage name`,
          fix: 'use a lowercase name that starts with a letter, with only a-z 0-9 _ - (at most 64)'
        };
      }
      if (spec.kind === 'stage') {
        return this._setRole(parsed, tag, 'stage', value);
      }
      parsed.after.push(value);
      return null;
    }
    const problem = this.pathProblem(value);
    if (problem) {
      return {
        tag,
        message: `path in ${pyRepr(tag)} ${problem}`,
        fix: 'give a relative path inside the project, such as data/train.parquet'
      };
    }
    (parsed[spec.kind as IoKind] as string[]).push(value);
    return null;
  }

  private _specOf(kind: string): TagSpec {
    const spec = this.schema.tags.find(t => t.kind === kind);
    if (!spec) {
      throw new Error(`the tag schema has no kind ${kind}`);
    }
    return spec;
  }

  private _prefixOf(kind: string): string {
    const prefix = this._specOf(kind).prefix;
    if (prefix === undefined) {
      throw new Error(`tag kind ${kind} takes no value`);
    }
    return prefix;
  }

  private _flagOf(kind: string): string {
    const tag = this._specOf(kind).tag;
    if (tag === undefined) {
      throw new Error(`tag kind ${kind} needs a value`);
    }
    return tag;
  }

  private _name: RegExp;
  private _path: RegExp;
  private _flags = new Map<string, TagSpec>();
  private _prefixed = new Map<string, TagSpec>();
  private _reserved = new Set<string>();
}

/** The stage name of a notebook without stage tags: the same slug as nbprod.notebooks.pipeline.slug. */
export function notebookStageName(stem: string): string {
  let name = stem.toLowerCase().replace(/[^a-z0-9_-]+/g, '-');
  name = name.replace(/^[-_]+|[-_]+$/g, '');
  name = name.replace(/^[^a-z]+/, '');
  return name.slice(0, 64);
}

/** A stable colour per stage name, so a stage reads the same in every notebook and the panel. */
export function stageHue(name: string): number {
  let hash = 0;
  for (let i = 0; i < name.length; i++) {
    hash = (hash * 31 + name.charCodeAt(i)) >>> 0;
  }
  return hash % 360;
}

function fail(tag: string, message: string, fix: string): ParseResult {
  return { ok: false, error: { tag, message, fix } };
}

/** Python's repr of a JSON value that is not a string (null, numbers, booleans, lists). */
function pyReprValue(value: unknown): string {
  if (value === null || value === undefined) {
    return 'None';
  }
  if (typeof value === 'boolean') {
    return value ? 'True' : 'False';
  }
  return JSON.stringify(value).replace(/,/g, ', ').replace(/:/g, ': ');
}

/** Python's repr of a string, so messages read the same as the CLI's. */
function pyRepr(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = '';
  for (const ch of text) {
    const code = ch.charCodeAt(0);
    if (ch === '\\') {
      out += '\\\\';
    } else if (ch === quote) {
      out += '\\' + ch;
    } else if (ch === '\n') {
      out += '\\n';
    } else if (ch === '\r') {
      out += '\\r';
    } else if (ch === '\t') {
      out += '\\t';
    } else if (code < 0x20 || code === 0x7f) {
      out += '\\x' + code.toString(16).padStart(2, '0');
    } else {
      out += ch;
    }
  }
  return quote + out + quote;
}
