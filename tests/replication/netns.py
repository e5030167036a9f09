#!/usr/bin/python3
"""Members of a group in network namespaces of their own, for the Jepsen tests.

Each member runs in a namespace with one veth into a bridge in the test's namespace; the test's
clients reach every member through the bridge, and the members reach each other through it.
nftables in each member's namespace makes the faults: a partition drops every packet to and from
the members cut off (a set of addresses, both directions), and loss drops a share of incoming
packets at random. Both are real to the kernel's TCP: its retransmissions, its timeouts.

available() says whether this machine allows it (root, `ip netns`, `nft`); where it does not, the
Jepsen test falls back to the transport's fault hook (POBJ_KV_TEST_NET) and says which ran.
"""
import os
import re
import shutil
import subprocess


def _run(*args, check=True):
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=30)


def available():
    """(True, None) if namespaces, veth, bridges and nftables work here, else (False, why)."""
    if os.geteuid() != 0:
        return False, "not root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return False, f"no {tool} (Debian's iproute2 / nftables)"
    name = f"pjprobe{os.getpid() % 100000}"
    try:
        _run("ip", "netns", "add", name)
        try:
            _run("ip", "netns", "exec", name, _nft(), "add", "table", "inet", "probe")
        finally:
            _run("ip", "netns", "del", name, check=False)
    except (subprocess.CalledProcessError, OSError, subprocess.TimeoutExpired) as e:
        detail = getattr(e, "stderr", "") or str(e)
        return False, f"network namespaces refused here: {detail.strip()}"
    return True, None


def _nft():
    return shutil.which("nft") or "/usr/sbin/nft"


def _remove_orphans():
    """Namespaces and bridges a killed test left (named after its pid, no longer running)."""
    def dead(pid):
        return not os.path.exists(f"/proc/{pid}")
    names = _run("ip", "netns", "list", check=False).stdout.split()
    for name in names:
        m = re.fullmatch(r"pj(\d+)n\d+", name)
        if m and dead(m.group(1)):
            _run("ip", "netns", "del", name, check=False)
    for line in _run("ip", "-o", "link", "show", "type", "bridge", check=False).stdout.splitlines():
        m = re.search(r": (pj(\d+)b):", line)
        if m and dead(m.group(2)):
            _run("ip", "link", "del", m.group(1), check=False)


class Network:
    """n member namespaces on one bridge. Member i (0-based) has address ip(i); prefix(i) is the
    command prefix that runs a program inside its namespace."""

    def __init__(self, n):
        _remove_orphans()
        tag = f"pj{os.getpid()}"  # (with the member's number, within 15 characters)
        self.tag = tag
        self.n = n
        self.net = f"10.{200 + os.getpid() % 50}.{(os.getpid() // 50) % 250}"
        self.bridge = f"{tag}b"
        self.namespaces = [f"{tag}n{i + 1}" for i in range(n)]
        self.cut = {i: set() for i in range(n)}
        self.lossy = set()
        try:
            _run("ip", "link", "add", self.bridge, "type", "bridge")
            _run("ip", "addr", "add", f"{self.net}.254/24", "dev", self.bridge)
            _run("ip", "link", "set", self.bridge, "up")
            for i, ns in enumerate(self.namespaces):
                host, member = f"{tag}h{i + 1}", f"{tag}m{i + 1}"
                _run("ip", "netns", "add", ns)
                _run("ip", "link", "add", host, "type", "veth", "peer", "name", member)
                _run("ip", "link", "set", host, "master", self.bridge, "up")
                _run("ip", "link", "set", member, "netns", ns)
                _run("ip", "-n", ns, "addr", "add", f"{self.ip(i)}/24", "dev", member)
                _run("ip", "-n", ns, "link", "set", member, "up")
                _run("ip", "-n", ns, "link", "set", "lo", "up")
                rules = ("table inet jepsen {\n"
                         " set cut { type ipv4_addr; }\n"
                         " chain input { type filter hook input priority 0; policy accept;\n"
                         "  ip saddr @cut drop\n }\n"
                         " chain output { type filter hook output priority 0; policy accept;\n"
                         "  ip daddr @cut drop\n }\n"
                         " chain loss { type filter hook input priority 1; policy accept; }\n"
                         "}\n")
                subprocess.run(["ip", "netns", "exec", ns, _nft(), "-f", "-"], input=rules, text=True,
                               capture_output=True, check=True, timeout=30)
        except BaseException:
            self.close()
            raise

    def ip(self, i):
        return f"{self.net}.{i + 1}"

    def prefix(self, i):
        return ["ip", "netns", "exec", self.namespaces[i]]

    def _nft_in(self, i, *args):
        _run("ip", "netns", "exec", self.namespaces[i], _nft(), *args)

    def isolate(self, i):
        """Member i can reach no other member, and none reaches it (clients still can)."""
        for j in range(self.n):
            if j != i:
                self.cut[i].add(j)
                self.cut[j].add(i)
        self._apply_cuts()

    def split(self, side, others):
        """No packet between a member of `side` and one of `others`, either way."""
        for i in side:
            for j in others:
                self.cut[i].add(j)
                self.cut[j].add(i)
        self._apply_cuts()

    def drop_randomly(self, i, percent):
        """Member i drops `percent` of the packets it receives, at random."""
        self._nft_in(i, "add", "rule", "inet", "jepsen", "loss", "numgen", "random", "mod", "100", "lt",
                     str(int(percent)), "drop")
        self.lossy.add(i)

    def heal(self):
        for i in self.cut:
            self.cut[i].clear()
        self._apply_cuts()
        for i in list(self.lossy):
            self._nft_in(i, "flush", "chain", "inet", "jepsen", "loss")
            self.lossy.discard(i)

    def _apply_cuts(self):
        for i in range(self.n):
            self._nft_in(i, "flush", "set", "inet", "jepsen", "cut")
            if self.cut[i]:
                elements = "{ " + ", ".join(self.ip(j) for j in sorted(self.cut[i])) + " }"
                self._nft_in(i, "add", "element", "inet", "jepsen", "cut", elements)

    def close(self):
        for ns in self.namespaces:
            _run("ip", "netns", "del", ns, check=False)  # (its veth end goes with it, and the pair)
        _run("ip", "link", "del", self.bridge, check=False)
