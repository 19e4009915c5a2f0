/**
 * Draws the stage DAG as SVG, top to bottom to suit a side panel: stages in rows by their longest
 * path from a root, edges from each upstream stage, the border coloured by the stage's state.
 */
import { stageHue } from './tags';

export interface DagNode {
  name: string;
  upstream: string[];
  state: string; // 'up to date' | 'changed' | 'never run' | 'failed' | 'running' | 'ran' | 'queued' | ''
}

const SVG = 'http://www.w3.org/2000/svg';
const W = 112;
const H = 24;
const GAP_X = 12;
const GAP_Y = 26;

export function layers(nodes: DagNode[]): Map<string, number> {
  const byName = new Map(nodes.map(n => [n.name, n]));
  const depth = new Map<string, number>();
  const visit = (name: string, trail: Set<string>): number => {
    const known = depth.get(name);
    if (known !== undefined) {
      return known;
    }
    if (trail.has(name)) {
      return 0; // a cycle is reported by the server; draw what we can
    }
    trail.add(name);
    const node = byName.get(name);
    const ups = node ? node.upstream.filter(u => byName.has(u)) : [];
    const d = ups.length ? Math.max(...ups.map(u => visit(u, trail))) + 1 : 0;
    trail.delete(name);
    depth.set(name, d);
    return d;
  };
  nodes.forEach(n => visit(n.name, new Set()));
  return depth;
}

export function renderDag(nodes: DagNode[]): SVGSVGElement {
  const depth = layers(nodes);
  const rows: string[][] = [];
  for (const node of nodes) {
    const d = depth.get(node.name) ?? 0;
    (rows[d] = rows[d] ?? []).push(node.name);
  }
  const at = new Map<string, [number, number]>();
  rows.forEach((names, y) =>
    names.forEach((name, x) => at.set(name, [8 + x * (W + GAP_X), 8 + y * (H + GAP_Y)]))
  );
  const width = 16 + Math.max(1, ...rows.map(r => r.length)) * (W + GAP_X) - GAP_X;
  const height = 16 + Math.max(1, rows.length) * (H + GAP_Y) - GAP_Y;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', 'jp-nbprod-dag');
  svg.setAttribute('width', String(width));
  svg.setAttribute('height', String(height));
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  for (const node of nodes) {
    const [x2, y2] = at.get(node.name)!;
    for (const up of node.upstream) {
      const from = at.get(up);
      if (!from) {
        continue;
      }
      const [x1, y1] = [from[0] + W / 2, from[1] + H];
      const [x3, y3] = [x2 + W / 2, y2];
      const mid = (y1 + y3) / 2;
      const path = document.createElementNS(SVG, 'path');
      path.setAttribute('d', `M${x1},${y1} C${x1},${mid} ${x3},${mid} ${x3},${y3}`);
      path.setAttribute('class', 'jp-nbprod-dag-edge');
      svg.appendChild(path);
    }
  }
  for (const node of nodes) {
    const [x, y] = at.get(node.name)!;
    const group = document.createElementNS(SVG, 'g');
    group.setAttribute('class', `jp-nbprod-dag-node jp-nbprod-state-${node.state.replace(/ /g, '-') || 'unknown'}`);
    group.setAttribute('data-stage', node.name);
    const rect = document.createElementNS(SVG, 'rect');
    rect.setAttribute('x', String(x));
    rect.setAttribute('y', String(y));
    rect.setAttribute('width', String(W));
    rect.setAttribute('height', String(H));
    rect.setAttribute('rx', '6');
    rect.style.fill = `hsl(${stageHue(node.name)}, 60%, 88%)`;
    const label = document.createElementNS(SVG, 'text');
    label.setAttribute('x', String(x + W / 2));
    label.setAttribute('y', String(y + H / 2 + 4));
    label.setAttribute('text-anchor', 'middle');
    label.textContent = node.name.length > 16 ? node.name.slice(0, 15) + '…' : node.name;
    const title = document.createElementNS(SVG, 'title');
    title.textContent = `${node.name}: ${node.state || 'unknown'}`;
    group.append(rect, label, title);
    svg.appendChild(group);
  }
  return svg;
}
