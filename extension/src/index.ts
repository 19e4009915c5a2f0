/**
 * nbprod's JupyterLab plugins: cell chips for stage tags, and the pipeline side panel.
 * Registration only; the widgets live in cellchips.ts, tageditor.ts, panel.ts and dag.ts.
 */
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { showErrorMessage } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';

import { NbprodApi, tagParser } from './api';
import { NotebookChips } from './cellchips';
import { PipelinePanel } from './panel';
import { modelsPanelPlugin } from './models-plugin';

const api = new NbprodApi();

const pipelineIcon = new LabIcon({
  name: 'nbprod:pipeline',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<rect x="2" y="3" width="8" height="6" rx="1.5"/><rect x="14" y="3" width="8" height="6" rx="1.5"/>' +
    '<rect x="8" y="15" width="8" height="6" rx="1.5"/>' +
    '<path d="M6 9v3h12V9h-1.5v1.5h-9V9zM11.25 12h1.5v3h-1.5z"/></g></svg>'
});

const cellTags: JupyterFrontEndPlugin<void> = {
  id: 'nbprod:cell-tags',
  description: 'A stage chip on every code cell; click it to tag the cell.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => {
    const attach = async (panel: NotebookPanel) => {
      try {
        const parser = await tagParser(api);
        await panel.context.ready;
        const chips = new NotebookChips(panel, parser);
        panel.disposed.connect(() => chips.dispose());
      } catch (error) {
        console.error('nbprod: cannot load the tag schema from the server extension', error);
        void showErrorMessage(
          'nbprod',
          `Cannot load the nbprod tag schema: ${(error as Error).message}. Is the nbprod server extension enabled?`
        );
      }
    };
    tracker.widgetAdded.connect((_, panel) => void attach(panel));
    tracker.forEach(panel => void attach(panel));
    console.log('nbprod: cell tag chips activated');
  }
};

const pipelinePanel: JupyterFrontEndPlugin<void> = {
  id: 'nbprod:pipeline-panel',
  description: 'The pipeline side panel: DAG, status, runs and reports.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILabShell],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker, labShell: ILabShell | null) => {
    const panel = new PipelinePanel({
      api,
      openNotebook: path => void app.commands.execute('docmanager:open', { path })
    });
    panel.title.icon = pipelineIcon;
    app.shell.add(panel, 'right', { rank: 600 });

    const follow = (notebook: NotebookPanel | null) => {
      if (notebook) {
        panel.setPath(PathExt.dirname(notebook.context.path));
      }
    };
    tracker.currentChanged.connect((_, notebook) => follow(notebook));
    follow(tracker.currentWidget);
    // Saving a notebook can change stages and their status.
    tracker.widgetAdded.connect((_, notebook) => {
      notebook.context.saveState.connect((context, state) => {
        if (state === 'completed' && PathExt.dirname(context.path) !== undefined) {
          panel.refreshSoon();
        }
      });
    });
    app.commands.addCommand('nbprod:open-pipeline', {
      label: 'Show the nbprod pipeline',
      execute: () => {
        if (labShell) {
          labShell.activateById(panel.id);
        } else {
          app.shell.activateById(panel.id);
        }
      }
    });
    console.log('nbprod: pipeline panel activated');
  }
};

export default [cellTags, pipelinePanel, modelsPanelPlugin];
