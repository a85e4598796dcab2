// Builds an agent, a gateway and an in-process KDC that trust each other: fresh principals and
// keys, the protected endpoints on both sides. Used by replay, simulation, the demo and benches.
import type { CryptoBackend } from '../common/crypto/backend';
import type { RandomSource } from '../common/crypto/random';
import type { EndpointRule } from '../common/engine/endpoints';
import { DEFAULT_OPTION_CONFIG, type OptionConfig } from '../common/protocol/options';
import { AgentEngine, type DestinationMode } from '../client-agent/engine';
import { GatewayEngine, type ServiceMode } from '../gateway/engine';
import { InProcessKdc } from './in-process-kdc';
import { Pipeline, type PipelineSinks } from './pipeline';
import type { Cidr } from '../common/protocol/cidr';
import type { WorkerSlot } from '../common/protocol/conn-id';

export const CLIENT_PRINCIPAL = 'client@pipeline';
export const GATEWAY_PRINCIPAL = 'gateway@pipeline';

export interface PipelineSetup {
  backend: CryptoBackend;
  random: RandomSource;
  /** Protected endpoints, as parsed by parseEndpoint. */
  protect: readonly { cidr: Cidr; port: number }[];
  agentMode?: DestinationMode;
  serviceMode?: ServiceMode;
  option?: OptionConfig;
  timers?: Partial<{ keyingTimeoutMs: number; lingerMs: number; idleTimeoutMs: number; refusedHoldMs: number }>;
  limits?: Partial<{ maxFlows: number; maxPendingKeyings: number; maxKdcInFlight: number }>;
  /** The agent as one of several worker processes (its connIds name the worker). */
  agentSlot?: WorkerSlot;
}

export const DEFAULT_TIMERS = { keyingTimeoutMs: 1500, lingerMs: 60_000, idleTimeoutMs: 300_000, refusedHoldMs: 5_000 };
export const DEFAULT_LIMITS = { maxFlows: 65_536, maxPendingKeyings: 4_096, maxKdcInFlight: 1_024 };

export interface Trio {
  agent: AgentEngine;
  gateway: GatewayEngine;
  kdc: InProcessKdc;
}

export function createTrio(setup: PipelineSetup): Trio {
  const { backend, random } = setup;
  const option = setup.option ?? DEFAULT_OPTION_CONFIG;
  const timers = { ...DEFAULT_TIMERS, ...setup.timers };
  const limits = { ...DEFAULT_LIMITS, ...setup.limits };
  const clientKey = { kvno: 1, key: random(32) };
  const gatewayKey = { kvno: 1, key: random(32) };
  const kdc = new InProcessKdc({
    backend,
    random,
    principals: [
      { name: CLIENT_PRINCIPAL, keys: [clientKey], disabled: false, allowedNets: [], groups: [] },
      { name: GATEWAY_PRINCIPAL, keys: [gatewayKey], disabled: false, allowedNets: [], groups: [] },
    ],
    allows: (client, gateway) => client === CLIENT_PRINCIPAL && gateway === GATEWAY_PRINCIPAL,
    ticketLifetimeMs: 120_000,
  });
  const agent = new AgentEngine(
    {
      principal: CLIENT_PRINCIPAL,
      keys: [clientKey],
      destinations: setup.protect.map((p): EndpointRule<{ mode: DestinationMode }> => ({ ...p, meta: { mode: setup.agentMode ?? 'require' } })),
      option,
      limits: { maxFlows: limits.maxFlows },
      timers: { lingerMs: timers.lingerMs, idleTimeoutMs: timers.idleTimeoutMs, maxClockSkewMs: 300_000 },
    },
    { backend, random },
    setup.agentSlot,
  );
  const gateway = new GatewayEngine(
    {
      principal: GATEWAY_PRINCIPAL,
      key: gatewayKey,
      services: setup.protect.map((p): EndpointRule<ServiceMode> => ({ ...p, meta: setup.serviceMode ?? 'require' })),
      option,
      agentPort: 7390,
      limits,
      timers,
    },
    { backend, random },
  );
  return { agent, gateway, kdc };
}

export function createPipeline(setup: PipelineSetup, sinks: PipelineSinks): Pipeline {
  const { agent, gateway, kdc } = createTrio(setup);
  return new Pipeline(agent, gateway, kdc, sinks);
}
