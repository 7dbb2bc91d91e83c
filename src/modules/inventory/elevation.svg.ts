import type { Elevation, ElevationDevice } from './elevation.service';

/** Colours by device role, and the legend's order. */
export const ROLE_COLOURS: Record<string, string> = {
  'rented-server': '#4f81bd',
  colocation: '#9bbb59',
  hypervisor: '#8064a2',
  network: '#f79646',
  pdu: '#c0504d',
};

const UNIT = 18;
const COL = 240;
const GUTTER = 34;
const TOP = 56;

function esc(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * A rack elevation as an SVG picture: front and rear side by side, unit numbers on both sides,
 * devices coloured by role with name and model, free units left open, a legend below.
 */
export function renderElevationSvg(e: Elevation, siteCode: string): string {
  const h = e.rack.heightU;
  const width = GUTTER * 2 + COL * 2 + 40;
  const legendY = TOP + h * UNIT + 24;
  const height = legendY + 40;
  const colX = { front: GUTTER, rear: GUTTER + COL + 40 };
  const y = (unit: number) => TOP + (h - unit) * UNIT;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="11">`,
    `<title>${esc(`Rack ${e.rack.name} (${siteCode})`)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${esc(`${siteCode} / ${e.rack.name}`)}</text>`,
    `<text x="${width / 2}" y="36" text-anchor="middle" fill="#555">${h}U · free: ${e.free.front} front, ${e.free.rear} rear</text>`,
  );
  for (const face of ['front', 'rear'] as const) {
    const x = colX[face];
    out.push(`<text x="${x + COL / 2}" y="${TOP - 6}" text-anchor="middle" font-weight="bold">${face === 'front' ? 'Front' : 'Rear'}</text>`);
    out.push(`<rect x="${x}" y="${TOP}" width="${COL}" height="${h * UNIT}" fill="#f4f4f4" stroke="#333" stroke-width="1.5"/>`);
    for (const row of e.units) {
      const yy = y(row.unit);
      out.push(`<line x1="${x}" y1="${yy + UNIT}" x2="${x + COL}" y2="${yy + UNIT}" stroke="#ddd"/>`);
      out.push(`<text x="${x - 6}" y="${yy + UNIT - 5}" text-anchor="end" fill="#666">${row.unit}</text>`);
      if (!row[face]) out.push(`<text class="free" x="${x + COL / 2}" y="${yy + UNIT - 5}" text-anchor="middle" fill="#bbb">free</text>`);
    }
    for (const d of e.devices.filter((d: ElevationDevice) => d.fullDepth || d.face === face)) {
      const top = d.position + d.heightU - 1;
      const yy = y(top);
      const hh = d.heightU * UNIT;
      const fill = ROLE_COLOURS[d.role] ?? '#999';
      const rear = face !== d.face;
      out.push(
        `<g class="device" data-device-id="${d.id}" data-role="${esc(d.role)}">`,
        `<rect x="${x + 2}" y="${yy + 1}" width="${COL - 4}" height="${hh - 2}" rx="2" fill="${fill}"${rear ? ' fill-opacity="0.55"' : ''} stroke="#222"/>`,
        `<text x="${x + 8}" y="${yy + Math.min(hh, UNIT) - 5}" fill="#fff" font-weight="bold">${esc(clip(d.name, 22))}</text>`,
        `<text x="${x + COL - 8}" y="${yy + Math.min(hh, UNIT) - 5}" text-anchor="end" fill="#fff">${esc(clip(d.model, 16))}</text>`,
        `</g>`,
      );
    }
  }
  let lx = GUTTER;
  for (const [role, colour] of Object.entries(ROLE_COLOURS)) {
    out.push(`<rect x="${lx}" y="${legendY}" width="12" height="12" fill="${colour}"/><text x="${lx + 16}" y="${legendY + 10}">${role}</text>`);
    lx += 24 + role.length * 7;
  }
  if (e.zeroU.length) {
    out.push(`<text x="${GUTTER}" y="${legendY + 30}" fill="#555">0U: ${esc(e.zeroU.map((d) => d.name).join(', '))}</text>`);
  }
  out.push('</svg>');
  return out.join('\n');
}
