// CPU time of Chromium's renderer processes (Linux /proc), so bench:browser can compare the page's
// CPU cost per token with Node's: on a shared machine, other processes stretch wall time far more
// than the CPU time spent. The renderer hosts the page, its engine worker and the pool workers, so
// with one thread (an idle page, the engine worker computing) its CPU time is the engine's.
import { readFileSync, readdirSync } from 'node:fs';

/** Clock ticks per second of /proc/PID/stat's utime and stime (USER_HZ, 100 on Linux). */
const HZ = 100;

function stat(pid: string): { ppid: number; ticks: number } | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may hold spaces.
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
}

/** User + system CPU ms of every process below `root` whose command line contains `--type=renderer`. */
export function rendererCpuMs(root = process.pid): number {
  const procs = new Map<number, { ppid: number; ticks: number }>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const s = stat(d);
    if (s) procs.set(Number(d), s);
  }
  let ticks = 0;
  for (const [pid, s] of procs) {
    let up = s.ppid;
    while (up > 1 && up !== root) up = procs.get(up)?.ppid ?? 0;
    if (up !== root) continue;
    let cmd = '';
    try { cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { continue; }
    if (cmd.includes('--type=renderer')) ticks += s.ticks;
  }
  return (ticks * 1000) / HZ;
}

/** User + system CPU ms of this process (all its threads). */
export function selfCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}
