// Tests of the TypeScript tag logic against the schema JSON that nbprod exports.
// NBPROD_TAG_CASES (written by tests/func/test_extension_tags.py) holds the Python parser's verdicts on a
// corpus of tag lists; the TypeScript parser must reach the same verdicts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { TagParser, TagSchema, notebookStageName } from '../src/tags';

const schemaPath =
  process.env.NBPROD_SCHEMA ?? join(__dirname, '..', '..', '..', 'nbprod', 'schema', 'tags.json');
const schema: TagSchema = JSON.parse(readFileSync(schemaPath, 'utf-8'));
const parser = new TagParser(schema);

test('every tag the schema defines parses to its kind', () => {
  for (const spec of schema.tags) {
    const tag =
      spec.tag ?? `${spec.prefix}${spec.value === 'name' ? 'train' : 'data/train.parquet'}`;
    const result = parser.parse([tag]);
    assert.ok(result.ok, `${tag} should be valid`);
    if (spec.role) {
      assert.equal(result.tags.role, spec.kind);
    } else {
      assert.deepEqual((result.tags as any)[spec.kind], [tag.slice(spec.prefix!.length)]);
    }
  }
});

test('a cell with two roles is flagged', () => {
  const result = parser.parse(['stage:train', 'skip']);
  assert.equal(result.ok, false);
  assert.match((result as any).error.message, /tagged both 'stage:train' and 'skip'/);
});

test('invalid names and unsafe paths are flagged, foreign tags are left alone', () => {
  assert.equal(parser.parse(['stage:Train']).ok, false);
  assert.equal(parser.parse(['after:1st']).ok, false);
  assert.equal(parser.parse(['deps:/etc/passwd']).ok, false);
  assert.equal(parser.parse(['outs:a//b']).ok, false);
  assert.equal(parser.parse(['Stage:x']).ok, false);
  assert.equal(parser.parse(['hide-input', 'jupyter:foo']).ok, true);
});

test('editing a role replaces the old role and keeps other tags', () => {
  const tags = ['stage:load', 'deps:data/raw.csv', 'hide-input'];
  assert.deepEqual(parser.withRole(tags, 'stage', 'clean'), [
    'stage:clean',
    'deps:data/raw.csv',
    'hide-input'
  ]);
  assert.deepEqual(parser.withRole(tags, 'skip'), ['skip', 'deps:data/raw.csv', 'hide-input']);
  assert.deepEqual(parser.withRole(tags, null), ['deps:data/raw.csv', 'hide-input']);
  assert.throws(() => parser.withRole(tags, 'stage', 'Bad Name'));
  assert.deepEqual(parser.withIo(['stage:a'], 'outs', 'model.pkl'), ['stage:a', 'outs:model.pkl']);
  assert.deepEqual(parser.withIo(['outs:model.pkl'], 'outs', 'model.pkl'), ['outs:model.pkl']);
  assert.throws(() => parser.withIo([], 'deps', '/abs'));
  assert.deepEqual(parser.renameStage(['stage:a', 'after:a', 'after:b'], 'a', 'z'), [
    'stage:z',
    'after:z',
    'after:b'
  ]);
  // Whatever the editor writes, the parser accepts.
  for (const edited of [parser.withRole([], 'stage', 'x'), parser.withRole(['stage:y'], 'parameters')]) {
    assert.ok(parser.parse(edited).ok);
  }
});

test('cells are placed in stages as the pipeline reads them', () => {
  const places = parser.placeCells(
    [[], ['parameters'], ['stage:load'], [], ['skip'], ['shared'], ['stage:train'], ['stage:']],
    'Model'
  );
  assert.deepEqual(
    places.map(p => [p.kind, p.stage, p.starts]),
    [
      ['stage', 'load', false],
      ['parameters', null, false],
      ['stage', 'load', true],
      ['stage', 'load', false],
      ['skip', null, false],
      ['shared', null, false],
      ['stage', 'train', true],
      ['invalid', null, false]
    ]
  );
  const whole = parser.placeCells([[], ['hide-input']], '01 My Notebook');
  assert.deepEqual(whole.map(p => p.stage), ['my-notebook', 'my-notebook']);
  assert.equal(notebookStageName('__Train_v2__'), 'train_v2');
});

test('the TypeScript parser agrees with nbprod.tags.parse_cell_tags', { skip: !process.env.NBPROD_TAG_CASES }, () => {
  const cases = JSON.parse(readFileSync(process.env.NBPROD_TAG_CASES!, 'utf-8'));
  assert.ok(cases.length > 20);
  for (const c of cases) {
    const result = parser.parse(c.tags);
    assert.equal(result.ok, c.ok, `verdict on ${JSON.stringify(c.tags)}`);
    if (result.ok) {
      const t = result.tags;
      assert.deepEqual(
        { role: t.role, stage: t.stage, after: t.after, deps: t.deps, outs: t.outs, metrics: t.metrics, plots: t.plots },
        c.parsed,
        `parse of ${JSON.stringify(c.tags)}`
      );
    } else {
      assert.equal(result.error.message, c.message, `message for ${JSON.stringify(c.tags)}`);
    }
  }
  if (process.env.NBPROD_SLUG_CASES) {
    const slugs = JSON.parse(readFileSync(process.env.NBPROD_SLUG_CASES, 'utf-8'));
    for (const [stem, expected] of slugs) {
      assert.equal(notebookStageName(stem), expected, `slug of ${stem}`);
    }
  }
});
