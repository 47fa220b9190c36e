// The Kubernetes kit as `kubectl kustomize` renders it (offline): the objects, their security
// settings, probes and ports, the ConfigMap's config passing `dns-tool check`, and the places
// that must agree with that config (listener and admin ports, the upstream IPs the
// NetworkPolicy lets out, the CoreDNS forward target). Needs kubectl and the built CLI.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { requireBinary, skipUnlessBinaries } from '../helpers/binaries.js';
import { runCli, runProcess } from '../helpers/proc.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BASE = join(ROOT, 'deploy/kubernetes');
const SIDECAR = join(BASE, 'sidecar');
const COREFILE = join(BASE, 'coredns/Corefile');

// Loosely typed views of rendered objects: the test reads fields and asserts their shape.
// biome-ignore lint/suspicious/noExplicitAny: manifests are arbitrary YAML
type Obj = any;

interface RawConfig {
  listeners: {
    name: string;
    address: string;
    port: number;
    protocols?: string[];
    ecs_client?: { from: string[] };
  }[];
  upstreams: Record<string, { servers: { address: string; port?: number }[] }>;
  policies: { name: string; clients: string[] }[];
  admin?: { address: string; port: number };
}

async function render(dir: string): Promise<Obj[]> {
  const result = await runProcess(requireBinary('kubectl'), ['kustomize', dir], { timeoutMs: 60_000 });
  assert.equal(result.code, 0, `kubectl kustomize ${dir} failed:\n${result.stderr}`);
  const docs = parseAllDocuments(result.stdout);
  for (const doc of docs) assert.deepEqual(doc.errors, [], 'rendered YAML parses');
  return docs.map((d) => d.toJS());
}

function only(objects: Obj[], kind: string): Obj {
  const found = objects.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `exactly one ${kind}`);
  return found[0];
}

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** Runs the built CLI's `check` on `text` as a file in `dir`; returns its exit code and stderr. */
async function check(
  dir: string,
  name: string,
  text: string,
): Promise<{ code: number | null; stderr: string }> {
  const file = join(dir, name);
  await writeFile(file, text);
  const result = await runCli(['check', file], { timeoutMs: 30_000 });
  return { code: result.code, stderr: result.stderr };
}

/** The container's port (number) that `ref` names (a number or a port name). */
function containerPort(container: Obj, ref: number | string, protocol = 'TCP'): number {
  if (typeof ref === 'number') return ref;
  const port = container.ports.find((p: Obj) => p.name === ref && (p.protocol ?? 'TCP') === protocol);
  assert.ok(port, `container port named ${ref}/${protocol}`);
  return port.containerPort;
}

/** The restrictions Pod Security "restricted" asks of every container, plus a read-only root. */
function assertLockedDown(container: Obj, pod: Obj, addNetBind: boolean): void {
  const sc = container.securityContext;
  assert.equal(sc.allowPrivilegeEscalation, false, `${container.name}: allowPrivilegeEscalation`);
  assert.equal(sc.readOnlyRootFilesystem, true, `${container.name}: readOnlyRootFilesystem`);
  assert.deepEqual(sc.capabilities.drop, ['ALL'], `${container.name}: drops every capability`);
  assert.deepEqual(sc.capabilities.add ?? [], addNetBind ? ['NET_BIND_SERVICE'] : []);
  assert.notEqual(sc.privileged, true);
  const runAsNonRoot = sc.runAsNonRoot ?? pod.securityContext?.runAsNonRoot;
  assert.equal(runAsNonRoot, true, `${container.name}: runAsNonRoot`);
  // The image's user is a name; only a numeric uid lets the kubelet verify runAsNonRoot.
  const uid = sc.runAsUser ?? pod.securityContext?.runAsUser;
  assert.ok(Number.isInteger(uid) && uid > 0, `${container.name}: numeric non-root runAsUser, got ${uid}`);
  const seccomp = sc.seccompProfile?.type ?? pod.securityContext?.seccompProfile?.type;
  assert.equal(seccomp, 'RuntimeDefault', `${container.name}: seccomp`);
}

/** A non-root process binds port 53 only when the pod lowers the unprivileged port start. */
function assertCanBind53(pod: Obj): void {
  const sysctl = (pod.securityContext?.sysctls ?? []).find(
    (s: Obj) => s.name === 'net.ipv4.ip_unprivileged_port_start',
  );
  assert.ok(sysctl, 'net.ipv4.ip_unprivileged_port_start is set');
  assert.ok(Number(sysctl.value) <= 53, `unprivileged ports start at ${sysctl.value}`);
  assert.notEqual(pod.hostNetwork, true, 'network sysctls need the pod network namespace');
}

function assertProbes(container: Obj, adminPort: number): void {
  const ready = container.readinessProbe?.httpGet;
  const live = container.livenessProbe?.httpGet;
  assert.equal(ready?.path, '/readyz');
  assert.equal(live?.path, '/healthz');
  assert.equal(containerPort(container, ready.port), adminPort, 'readiness probe on the admin port');
  assert.equal(containerPort(container, live.port), adminPort, 'liveness probe on the admin port');
}

function assertConfigMounted(container: Obj, pod: Obj, configMapName: string): void {
  const at = container.args.indexOf('--config');
  assert.ok(at >= 0, 'the container names its config file');
  const configPath: string = container.args[at + 1];
  const mount = container.volumeMounts.find((m: Obj) => configPath.startsWith(`${m.mountPath}/`));
  assert.ok(mount, `a volume is mounted above ${configPath}`);
  // A subPath mount is a copy the kubelet never updates: hot reload needs the directory.
  assert.equal(mount.subPath, undefined, 'the ConfigMap is mounted as a directory, not a subPath');
  assert.equal(mount.readOnly, true);
  const volume = pod.volumes.find((v: Obj) => v.name === mount.name);
  assert.equal(volume?.configMap?.name, configMapName);
  assert.equal(configPath.slice(mount.mountPath.length + 1), 'config.yaml');
}

describe('deploy/kubernetes', { skip: skipUnlessBinaries('kubectl') }, () => {
  let objects: Obj[];
  let configText: string;
  let config: RawConfig;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dns-tool-k8s-'));
    objects = await render(BASE);
    const configMap = only(objects, 'ConfigMap');
    configText = configMap.data['config.yaml'];
    config = parse(configText) as RawConfig;
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('renders one of each object, all in the dns-tool namespace', () => {
    const kinds = objects.map((o) => o.kind).sort();
    assert.deepEqual(kinds, [
      'ConfigMap',
      'Deployment',
      'Namespace',
      'NetworkPolicy',
      'PodDisruptionBudget',
      'Service',
    ]);
    for (const o of objects.filter((o) => o.kind !== 'Namespace')) {
      assert.equal(o.metadata.namespace, 'dns-tool', `${o.kind} namespace`);
    }
    const ns = only(objects, 'Namespace');
    assert.equal(ns.metadata.name, 'dns-tool');
    assert.equal(ns.metadata.labels['pod-security.kubernetes.io/enforce'], 'restricted');
  });

  test("the ConfigMap's config passes dns-tool check, and a broken copy does not", async () => {
    const ok = await check(dir, 'config.yaml', configText);
    assert.equal(ok.code, 0, ok.stderr);
    // The same text with one unknown key: proves the check reads what the ConfigMap holds.
    const broken = await check(dir, 'broken.yaml', `${configText}\necs_client_typo: true\n`);
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /broken\.yaml:\d+:\d+: .*ecs_client_typo/);
  });

  test('the ConfigMap keeps a fixed name, so updates reach running pods', () => {
    const configMap = only(objects, 'ConfigMap');
    assert.equal(configMap.metadata.name, 'dns-tool-config', 'no content-hash suffix');
    const deployment = only(objects, 'Deployment');
    const pod = deployment.spec.template.spec;
    assertConfigMounted(pod.containers[0], pod, 'dns-tool-config');
  });

  test('the Deployment: 2 replicas spread over nodes, locked down, probed, with resources', () => {
    const deployment = only(objects, 'Deployment');
    assert.equal(deployment.spec.replicas, 2);
    const podLabels = deployment.spec.template.metadata.labels;
    assert.ok(matches(deployment.spec.selector.matchLabels, podLabels), 'selector matches the pods');
    const pod = deployment.spec.template.spec;
    assert.equal(pod.containers.length, 1);
    const container = pod.containers[0];
    assertLockedDown(container, pod, true);
    assertCanBind53(pod);
    assert.equal(pod.automountServiceAccountToken, false);
    assertProbes(container, config.admin?.port ?? -1);
    for (const kind of ['requests', 'limits']) {
      assert.ok(container.resources?.[kind]?.cpu, `${kind}.cpu`);
      assert.ok(container.resources?.[kind]?.memory, `${kind}.memory`);
    }
    const byHost = (pod.topologySpreadConstraints ?? []).find(
      (t: Obj) => t.topologyKey === 'kubernetes.io/hostname',
    );
    assert.ok(byHost, 'spread across nodes');
    assert.equal(byHost.whenUnsatisfiable, 'DoNotSchedule');
    assert.ok(matches(byHost.labelSelector.matchLabels, podLabels), 'the spread counts these pods');
    assert.equal(deployment.spec.strategy.rollingUpdate.maxUnavailable, 0, 'rollouts keep both replicas');
  });

  test("container ports are the config's listener and admin ports", () => {
    const container = only(objects, 'Deployment').spec.template.spec.containers[0];
    for (const listener of config.listeners) {
      for (const protocol of listener.protocols ?? ['udp', 'tcp']) {
        const port = container.ports.find(
          (p: Obj) => p.containerPort === listener.port && p.protocol === protocol.toUpperCase(),
        );
        assert.ok(port, `container port ${listener.port}/${protocol} for listener ${listener.name}`);
      }
    }
    assert.equal(config.admin?.address, '0.0.0.0', 'the kubelet probes the admin port on the pod IP');
    assert.ok(
      container.ports.some((p: Obj) => p.containerPort === config.admin?.port && p.protocol === 'TCP'),
    );
  });

  test('the Service: DNS on 53 over UDP and TCP, and the metrics port', () => {
    const service = only(objects, 'Service');
    const deployment = only(objects, 'Deployment');
    const container = deployment.spec.template.spec.containers[0];
    assert.ok(matches(service.spec.selector, deployment.spec.template.metadata.labels));
    const ports = service.spec.ports as Obj[];
    const target = (p: Obj) => containerPort(container, p.targetPort ?? p.port, p.protocol);
    for (const protocol of ['UDP', 'TCP']) {
      const dns = ports.find((p) => p.port === 53 && p.protocol === protocol);
      assert.ok(dns, `Service port 53/${protocol}`);
      assert.equal(target(dns), 53);
    }
    const metrics = ports.find((p) => p.port === 9153);
    assert.ok(metrics, 'Service port 9153');
    assert.equal(metrics.protocol, 'TCP');
    assert.equal(target(metrics), config.admin?.port);
    // Every Service port lands on a port the gateway listens on.
    const listening = new Set([
      ...config.listeners.flatMap((l) =>
        (l.protocols ?? ['udp', 'tcp']).map((p) => `${l.port}/${p.toUpperCase()}`),
      ),
      `${config.admin?.port}/TCP`,
    ]);
    for (const p of ports) assert.ok(listening.has(`${target(p)}/${p.protocol}`), `${p.name} has a listener`);
  });

  test('the PodDisruptionBudget keeps one replica through voluntary disruptions', () => {
    const pdb = only(objects, 'PodDisruptionBudget');
    const deployment = only(objects, 'Deployment');
    assert.ok(matches(pdb.spec.selector.matchLabels, deployment.spec.template.metadata.labels));
    assert.equal(pdb.spec.minAvailable, 1);
    assert.ok(pdb.spec.minAvailable < deployment.spec.replicas, 'a drain can still evict one pod');
  });

  test("the NetworkPolicy lets out only the config's upstream IPs on their DoT port", () => {
    const policy = only(objects, 'NetworkPolicy');
    const deployment = only(objects, 'Deployment');
    assert.ok(matches(policy.spec.podSelector.matchLabels, deployment.spec.template.metadata.labels));
    assert.deepEqual([...policy.spec.policyTypes].sort(), ['Egress', 'Ingress']);

    const servers = Object.values(config.upstreams).flatMap((set) => set.servers);
    const expectedCidrs = new Set(servers.map((s) => `${s.address}/${isIP(s.address) === 6 ? 128 : 32}`));
    const serverPorts = new Set(servers.map((s) => s.port ?? 853));
    assert.deepEqual([...serverPorts], [853]);
    const cidrs = new Set<string>();
    for (const rule of policy.spec.egress as Obj[]) {
      assert.ok(Array.isArray(rule.to) && rule.to.length > 0, 'no egress rule open to everywhere');
      for (const peer of rule.to) {
        assert.deepEqual(Object.keys(peer), ['ipBlock'], 'egress peers are IP blocks only');
        assert.equal(peer.ipBlock.except, undefined);
        cidrs.add(peer.ipBlock.cidr);
      }
      assert.ok(Array.isArray(rule.ports) && rule.ports.length > 0, 'no egress rule open on every port');
      for (const port of rule.ports) {
        assert.equal(port.protocol, 'TCP');
        assert.ok(serverPorts.has(port.port), `egress port ${port.port} is an upstream's port`);
      }
    }
    assert.deepEqual([...cidrs].sort(), [...expectedCidrs].sort());
  });

  test('the NetworkPolicy: DNS from the cluster, the CoreDNS port from CoreDNS, metrics from monitoring', () => {
    const ingress = only(objects, 'NetworkPolicy').spec.ingress as Obj[];
    const rulesFor = (port: number, protocol: string) =>
      ingress.filter((r) => r.ports.some((p: Obj) => p.port === port && p.protocol === protocol));
    for (const protocol of ['UDP', 'TCP']) {
      const dns = rulesFor(53, protocol);
      assert.equal(dns.length, 1);
      assert.deepEqual(dns[0].from, [{ namespaceSelector: {} }], 'every pod of the cluster');
    }
    const metrics = rulesFor(9153, 'TCP');
    assert.equal(metrics.length, 1);
    assert.deepEqual(metrics[0].from, [
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
    ]);
    const coredns = config.listeners.find((l) => l.name === 'coredns');
    assert.ok(coredns, 'a listener for CoreDNS');
    for (const protocol of ['UDP', 'TCP']) {
      const rules = rulesFor(coredns.port, protocol);
      assert.equal(rules.length, 1);
      // Both selectors in one peer: CoreDNS pods in kube-system, not all of kube-system or all
      // kube-dns-labelled pods anywhere. Only they may name clients with ECS.
      assert.deepEqual(rules[0].from, [
        {
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
          podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
        },
      ]);
    }
    // Every port any rule opens belongs to a listener or the admin server.
    const known = new Set([...config.listeners.map((l) => l.port), config.admin?.port]);
    for (const rule of ingress) for (const p of rule.ports) assert.ok(known.has(p.port), `ingress ${p.port}`);
  });

  test("the CoreDNS snippet sends each pod's address as ECS to the CoreDNS listener", async () => {
    const corefile = await readFile(COREFILE, 'utf8');
    const lines = corefile
      .split('\n')
      .map((l) => l.replace(/#.*/, '').trim())
      .filter((l) => l !== '');
    assert.equal(
      lines.filter((l) => l.endsWith('{')).length,
      lines.filter((l) => l === '}').length,
      'balanced blocks',
    );
    // `set` overwrites an ECS option a pod sent itself; `append` would let a pod pick its identity.
    assert.ok(lines.includes('rewrite edns0 subnet set 32 128'), 'rewrite edns0 subnet set 32 128');
    const forward = lines.find((l) => l.startsWith('forward '));
    const m = /^forward \. (\S+):(\d+)(?: \{)?$/.exec(forward ?? '');
    assert.ok(m, `forward . IP:PORT, got ${forward}`);
    assert.equal(isIP(m[1]), 4, 'the forward plugin needs an address');
    const coredns = config.listeners.find((l) => l.name === 'coredns');
    assert.equal(Number(m[2]), coredns?.port, "the gateway's CoreDNS listener port");
    // The ECS CoreDNS sends names the client only on a listener that trusts CoreDNS for it.
    assert.ok(coredns?.ecs_client?.from.length, 'the CoreDNS listener has ecs_client');
    assert.equal(
      config.listeners.find((l) => l.name !== 'coredns' && l.ecs_client !== undefined),
      undefined,
      'no other listener takes a client name from ECS',
    );
    const service = only(objects, 'Service');
    for (const protocol of ['UDP', 'TCP']) {
      assert.ok(
        service.spec.ports.some((p: Obj) => p.port === Number(m[2]) && p.protocol === protocol),
        `the Service exposes ${m[2]}/${protocol}`,
      );
    }
    // CoreDNS's cache runs before rewrite and ignores the client: it would share one pod's
    // policy outcome with every other pod.
    assert.ok(!lines.some((l) => /^cache(\s|$)/.test(l)), 'no cache in front of per-client policies');
  });
});

describe('deploy/kubernetes/sidecar', { skip: skipUnlessBinaries('kubectl') }, () => {
  let objects: Obj[];
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'dns-tool-sidecar-'));
    objects = await render(SIDECAR);
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test("the pod's resolver is the sidecar on 127.0.0.1:53, which starts before the app", async () => {
    assert.deepEqual(objects.map((o) => o.kind).sort(), ['ConfigMap', 'Pod']);
    const pod = only(objects, 'Pod').spec;
    assert.equal(pod.dnsPolicy, 'None');
    assert.deepEqual(pod.dnsConfig.nameservers, ['127.0.0.1']);
    const sidecar = (pod.initContainers ?? []).find((c: Obj) => c.name === 'dns-tool');
    assert.ok(sidecar, 'dns-tool is an init container');
    assert.equal(sidecar.restartPolicy, 'Always', 'a native sidecar: it keeps running beside the app');
    assert.equal(sidecar.startupProbe?.httpGet?.path, '/readyz', 'the app starts once resolution works');
    assertLockedDown(sidecar, pod, true);
    for (const app of pod.containers) assertLockedDown(app, pod, false);
    assertCanBind53(pod);

    const configMap = only(objects, 'ConfigMap');
    assertConfigMounted(sidecar, pod, configMap.metadata.name);
    const text: string = configMap.data['config.yaml'];
    const result = await check(dir, 'sidecar.yaml', text);
    assert.equal(result.code, 0, result.stderr);
    const config = parse(text) as RawConfig;
    assert.ok(
      config.listeners.some(
        (l) =>
          l.address === '127.0.0.1' &&
          l.port === 53 &&
          ['udp', 'tcp'].every((p) => (l.protocols ?? ['udp', 'tcp']).includes(p)),
      ),
      'a listener on 127.0.0.1:53 over UDP and TCP',
    );
    assert.ok(
      config.policies.some((p) => p.clients.includes('127.0.0.0/8') || p.clients.includes('127.0.0.1')),
      'a policy for the pod itself',
    );
    assertProbes(sidecar, config.admin?.port ?? -1);
  });
});
