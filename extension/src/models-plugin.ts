/**
 * Registers the Models side panel (right sidebar, beside the pipeline panel). It follows the folder
 * of the current notebook, as the pipeline panel does.
 */
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { PathExt } from '@jupyterlab/coreutils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';

import { ModelsPanel } from './models';
import { ModelsApi } from './models-api';

const modelsIcon = new LabIcon({
  name: 'nbprod:models',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<path d="M12 2 3 6.5v11L12 22l9-4.5v-11zm0 2.2 6.6 3.3L12 10.8 5.4 7.5zM5 9.1l6 3v7.6l-6-3zm8 10.6v-7.6l6-3v7.6z"/>' +
    '</g></svg>'
});

export const modelsPanelPlugin: JupyterFrontEndPlugin<void> = {
  id: 'nbprod:models-panel',
  description: 'The Models side panel: production, candidates, approve/reject, history, rollback, retrain.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILabShell],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker, labShell: ILabShell | null) => {
    const panel = new ModelsPanel(new ModelsApi());
    panel.title.icon = modelsIcon;
    app.shell.add(panel, 'right', { rank: 650 });
    const follow = (notebook: NotebookPanel | null) => {
      if (notebook) {
        panel.setPath(PathExt.dirname(notebook.context.path));
      }
    };
    tracker.currentChanged.connect((_, notebook) => follow(notebook));
    follow(tracker.currentWidget);
    app.commands.addCommand('nbprod:open-models', {
      label: 'Show the nbprod models',
      execute: () => (labShell ?? app.shell).activateById(panel.id)
    });
    console.log('nbprod: models panel activated');
  }
};
