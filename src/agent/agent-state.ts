import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** What `sendense agent register` learned, kept in the agent dir (0600: it holds the agent's API token). */
export interface AgentState {
  agentId: string;
  name: string;
  hubUrl: string;
  /** The hub API's certificate fingerprint pinned at registration (an https:// hub); agent run pins it through the tunnel too. */
  hubFingerprint?: string | null;
  token: string;
  fingerprint: string;
  ssh: { host: string; port: number; hostKeyFingerprint: string };
}

export function agentDir(env: NodeJS.ProcessEnv): string {
  return resolve(env.SENDENSE_AGENT_DIR || './var/agent');
}

export function saveAgentState(dir: string, state: AgentState): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'agent.json');
  writeFileSync(file, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  chmodSync(file, 0o600);
}

export function loadAgentState(dir: string): AgentState {
  const file = join(dir, 'agent.json');
  if (!existsSync(file)) throw new Error(`${file} does not exist: run \`sendense agent register --hub URL --name NAME\` first`);
  return JSON.parse(readFileSync(file, 'utf8')) as AgentState;
}
