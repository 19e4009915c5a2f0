/**
 * The Models panel's dialogs: a decision (approve, reject, roll back) with its required note, the
 * override reason for a candidate that failed its gates, and a typed name on a shared-token server;
 * and the second confirmation an override needs.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { Decision } from './models-api';

export interface DecisionRequest {
  title: string;
  intro: HTMLElement;
  accept: string;
  noteLabel: string;
  /** The server has one shared token: it cannot tell who is asking, so the person types a name. */
  askName: boolean;
  /** Failed gates: an override reason is required, as `nbprod approve --override REASON`. */
  failedGates?: string[];
  warn?: boolean;
}

class DecisionBody extends Widget implements Dialog.IBodyWidget<Decision> {
  constructor(request: DecisionRequest, previous: Decision | null, problem: string | null) {
    super();
    this.addClass('jp-nbprod-decision');
    const node = this.node;
    node.appendChild(request.intro);
    if (problem) {
      node.appendChild(text('div', 'jp-nbprod-error jp-nbprod-decision-problem', problem));
    }
    this._note = field(node, 'textarea', 'nbprod-note', request.noteLabel, previous?.note ?? '') as HTMLTextAreaElement;
    if (request.failedGates?.length) {
      const list = text('div', 'jp-nbprod-decision-failed', `Failed gates: ${request.failedGates.join('; ')}`);
      node.appendChild(list);
      this._override = field(
        node,
        'textarea',
        'nbprod-override',
        'Override reason (why the failed gates are acceptable; kept in the registry)',
        previous?.override ?? ''
      ) as HTMLTextAreaElement;
    }
    if (request.askName) {
      node.appendChild(
        text(
          'div',
          'jp-nbprod-decision-identity',
          'This server has one shared token, so it cannot tell who you are. Your typed name is recorded, ' +
            'marked as typed on a single-user token server.'
        )
      );
      this._name = field(node, 'input', 'nbprod-name', 'Your name', previous?.name ?? '') as HTMLInputElement;
    }
  }

  getValue(): Decision {
    const value: Decision = { note: this._note.value.trim() };
    if (this._override) {
      value.override = this._override.value.trim();
    }
    if (this._name) {
      value.name = this._name.value.trim();
    }
    return value;
  }

  private _note: HTMLTextAreaElement;
  private _override: HTMLTextAreaElement | null = null;
  private _name: HTMLInputElement | null = null;
}

/** Ask for a decision's note (and override reason, and name); null when cancelled. Re-asks until the
 * required fields are filled, keeping what was typed. */
export async function askDecision(request: DecisionRequest): Promise<Decision | null> {
  let previous: Decision | null = null;
  let problem: string | null = null;
  for (;;) {
    const result: Dialog.IResult<Decision> = await showDialog<Decision>({
      title: request.title,
      body: new DecisionBody(request, previous, problem),
      buttons: [
        Dialog.cancelButton(),
        request.warn ? Dialog.warnButton({ label: request.accept }) : Dialog.okButton({ label: request.accept })
      ],
      focusNodeSelector: 'textarea'
    });
    if (!result.button.accept || !result.value) {
      return null;
    }
    const value: Decision = result.value;
    previous = value;
    problem = missing(request, value);
    if (!problem) {
      return value;
    }
  }
}

/** The second confirmation before promoting a candidate that failed its gates. */
export async function confirmOverride(candidate: string, failed: string[], reason: string): Promise<boolean> {
  const body = document.createElement('div');
  body.className = 'jp-nbprod-confirm-override';
  body.appendChild(text('p', '', `Candidate ${candidate} failed: ${failed.join('; ')}.`));
  body.appendChild(text('p', '', `Your reason: ${reason}`));
  body.appendChild(text('p', '', 'It goes to production now, and the override is recorded with your name.'));
  const result = await showDialog({
    title: `Promote ${candidate} although it failed its gates?`,
    body: new Widget({ node: body }),
    buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Promote anyway' })]
  });
  return result.button.accept;
}

function missing(request: DecisionRequest, value: Decision): string | null {
  if (!value.note) {
    return 'A note is required: say why.';
  }
  if (request.failedGates?.length && !value.override) {
    return 'This candidate failed its gates: give the override reason.';
  }
  if (request.askName && !value.name) {
    return 'Type your name for the record.';
  }
  return null;
}

function field(parent: HTMLElement, tag: 'input' | 'textarea', name: string, label: string, value: string): HTMLElement {
  const row = document.createElement('label');
  row.className = 'jp-nbprod-decision-field';
  row.appendChild(text('span', '', label));
  const input = document.createElement(tag) as HTMLInputElement | HTMLTextAreaElement;
  input.name = name;
  input.value = value;
  if (tag === 'textarea') {
    (input as HTMLTextAreaElement).rows = 3;
  }
  row.appendChild(input);
  parent.appendChild(row);
  return input;
}

export function text(tag: string, cls: string, content: string): HTMLElement {
  const node = document.createElement(tag);
  if (cls) {
    node.className = cls;
  }
  node.textContent = content;
  return node;
}
