/**
 * What the tag dialog decided, turned into a cell's new tags: pure logic, tested with node.
 */
import { CellPlace, IoKind, TagParser } from './tags';

/** What the dialog decided, turned into tags by {@link applyChoice}. */
export interface TagChoice {
  role: string; // 'follow' | 'stage:NAME' | 'new' | 'parameters' | 'shared' | 'skip'
  newStage: string;
  rename: string;
  keepIo: string[];
  addKind: IoKind;
  addValue: string;
}

/**
 * The cell's new tags and, when a stage is renamed, the rename to apply to every cell.
 * Throws an Error with a user-facing message when the choice breaks the schema.
 */
export function applyChoice(
  parser: TagParser,
  tags: string[],
  place: CellPlace,
  choice: TagChoice
): { tags: string[]; rename: [string, string] | null } {
  const io = parser.ioTags(tags);
  let next = tags.filter(t => !io.includes(t) || choice.keepIo.includes(t));
  if (choice.role === 'follow') {
    next = parser.withRole(next, null);
  } else if (choice.role === 'new') {
    if (!parser.isValidName(choice.newStage)) {
      throw new Error(
        `"${choice.newStage}" is not a stage name: use lowercase letters, digits, _ and -, starting with a letter`
      );
    }
    next = parser.withRole(next, 'stage', choice.newStage);
  } else if (choice.role.startsWith('stage:')) {
    next = parser.withRole(next, 'stage', choice.role.slice('stage:'.length));
  } else {
    next = parser.withRole(next, choice.role as 'parameters' | 'shared' | 'skip');
  }
  if (choice.addValue) {
    next = parser.withIo(next, choice.addKind, choice.addValue);
  }
  const role = parser.parse(next);
  if (role.ok && role.tags.role && role.tags.role !== 'stage' && parser.ioTags(next).length) {
    // The pipeline refuses this too (nbprod.notebooks.pipeline): files and ordering belong to a stage.
    throw new Error(
      `a ${role.tags.role} cell cannot carry after:/deps:/outs:/metrics:/plots: tags; ` +
        'untick them, or put them on a cell of the stage they belong to'
    );
  }
  let rename: [string, string] | null = null;
  if (place.starts && place.stage && choice.rename && choice.rename !== place.stage && choice.role === `stage:${place.stage}`) {
    if (!parser.isValidName(choice.rename)) {
      throw new Error(`"${choice.rename}" is not a stage name`);
    }
    rename = [place.stage, choice.rename];
  }
  const check = parser.parse(next);
  if (!check.ok) {
    throw new Error(`${check.error.message}. Fix: ${check.error.fix}`);
  }
  return { tags: next, rename };
}

