// The tag dialog's decisions, turned into tags: what the chip writes must be what the CLI reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { TagChoice, applyChoice } from '../src/tagchoice';
import { CellPlace, TagParser } from '../src/tags';

const schemaPath =
  process.env.NBPROD_SCHEMA ?? join(__dirname, '..', '..', '..', 'nbprod', 'schema', 'tags.json');
const parser = new TagParser(JSON.parse(readFileSync(schemaPath, 'utf-8')));

const follower: CellPlace = { kind: 'stage', stage: 'evaluate', starts: false, error: null };
const starter: CellPlace = { kind: 'stage', stage: 'train', starts: true, error: null };

function choice(overrides: Partial<TagChoice>): TagChoice {
  return { role: 'follow', newStage: '', rename: '', keepIo: [], addKind: 'deps', addValue: '', ...overrides };
}

test('a new stage replaces the role and keeps the files the user kept', () => {
  const tags = ['plots:figures/roc.png', 'hide-input'];
  const result = applyChoice(parser, tags, follower, choice({ role: 'new', newStage: 'roc', keepIo: tags }));
  assert.deepEqual(result, { tags: ['stage:roc', 'plots:figures/roc.png', 'hide-input'], rename: null });
});

test('unticked file tags are removed and an added one is appended', () => {
  const tags = ['stage:train', 'deps:a.csv', 'outs:b.csv'];
  const result = applyChoice(
    parser,
    tags,
    starter,
    choice({ role: 'stage:train', keepIo: ['outs:b.csv'], addKind: 'metrics', addValue: 'm.json', rename: 'train' })
  );
  assert.deepEqual(result.tags, ['stage:train', 'outs:b.csv', 'metrics:m.json']);
  assert.equal(result.rename, null);
});

test('renaming the stage its cell starts asks for a rename everywhere', () => {
  const result = applyChoice(parser, ['stage:train'], starter, choice({ role: 'stage:train', rename: 'fit' }));
  assert.deepEqual(result.rename, ['train', 'fit']);
});

test('roles and following the stage above', () => {
  assert.deepEqual(applyChoice(parser, ['stage:x'], starter, choice({ role: 'skip' })).tags, ['skip']);
  assert.deepEqual(applyChoice(parser, ['stage:x', 'foo'], starter, choice({ role: 'follow' })).tags, ['foo']);
  assert.deepEqual(applyChoice(parser, [], follower, choice({ role: 'stage:train' })).tags, ['stage:train']);
});

test('choices that break the schema are refused with a message', () => {
  assert.throws(() => applyChoice(parser, [], follower, choice({ role: 'new', newStage: 'Bad Name' })), /not a stage name/);
  assert.throws(() => applyChoice(parser, [], starter, choice({ role: 'stage:train', rename: '9x' })), /not a stage name/);
  assert.throws(() => applyChoice(parser, [], follower, choice({ addKind: 'outs', addValue: '/etc/passwd' })), /absolute/);
  assert.throws(() => applyChoice(parser, [], follower, choice({ addKind: 'after', addValue: 'Up' })), /not a valid stage name/);
  // The pipeline refuses file tags on parameters/shared/skip cells, so the dialog does too.
  assert.throws(
    () => applyChoice(parser, ['deps:a.csv'], follower, choice({ role: 'parameters', keepIo: ['deps:a.csv'] })),
    /parameters cell cannot carry/
  );
  for (const role of ['parameters', 'shared', 'skip', 'follow']) {
    const result = applyChoice(parser, ['stage:a', 'x-other', 'deps:a.csv'], starter, choice({ role }));
    assert.ok(parser.parse(result.tags).ok);
    assert.ok(!result.tags.includes('deps:a.csv'));
  }
});
