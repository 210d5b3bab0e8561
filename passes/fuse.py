"""fuse: group nodes into `fused` nodes that codegen computes with ONE kernel each.

How groups form (every decision against the checks of passes/fusion_rules.py):
1. Contraction epilogues. From each matmul/conv2d, the chain of elementwise consumers that
   are the only user of the value before them joins it (bias add, activation), with the side
   nodes that feed only that chain (a broadcast bias, a relu mask): the kernel's epilogue
   hook computes them as each output value is finished, and only the chain's last value is
   stored.
2. Producers into consumers, consumers first (reverse topological order). A producer whose
   users are all in one group joins it. A producer whose users are in several groups joins
   the group of its immediate post-dominator (networkx's dominators of the reversed graph,
   with a virtual exit after the outputs) together with every group on the paths to it,
   when the union is a valid group. Otherwise it joins the first user group it can as an
   extra stored result (a multi-output group), or stays alone.
A merge is refused when the group would not be convex (a path leaving the group and coming
back would make the fused node depend on itself) or when fusion_rules rejects it; every
refusal is kept with its reason (`explain_fusion`, `graphc opt --explain-fusion`).

Never fused: constants (a leaf, no kernel), views (reshape), injective movement (transpose,
slice, pad, concat, gather: they reorder elements), opaque ops (pooling), argmax, already
fused nodes.

Stats: fused_groups, fused_nodes, kernels_before, kernels_after (nodes that need a kernel:
constants and reshapes need none), refusals, groups_<kind>.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import networkx as nx

from ir import Graph
from ir.graph import Node, Value
from ir.location import fuse_locs
from ir.opdef import get_op

from .fusion_rules import (CONTRACTION_OPS, REDUCE_OPS, check_group, group_kind,
                           is_elementwise)
from .registry import PassContext, function_pass

FREE_OPS = ("constant", "reshape")       # no kernel: a global, or a view of its operand


def needs_kernel(node: Node) -> bool:
    return node.op not in FREE_OPS


def _fusible(node: Node) -> bool:
    return node.op in REDUCE_OPS or node.op in CONTRACTION_OPS or node.op == "broadcast" \
        or is_elementwise(node)


@dataclass
class FusionReport:
    """What the fusion pass decided: groups (lists of node indices of the input graph, with
    their kind) and refusals (node index, reason)."""
    graph: Graph
    groups: list = field(default_factory=list)       # (kind, [node indices])
    refusals: list = field(default_factory=list)     # (node index, reason)
    fuser: object = None                             # the decisions, for building the graph

    def lines(self) -> list:
        out = []
        for k, (kind, members) in enumerate(self.groups):
            ops = ", ".join(f"%{self.graph.nodes[i].outputs[0].name} {self.graph.nodes[i].op}"
                            for i in members)
            out.append(f"group {k} ({kind}, {len(members)} nodes): {ops}")
        for i, reason in self.refusals:
            n = self.graph.nodes[i]
            out.append(f"refused %{n.outputs[0].name} ({n.op}): {reason}")
        return out


class _Fuser:
    def __init__(self, graph: Graph):
        self.g = graph
        self.nodes = graph.nodes
        self.index = {id(n): i for i, n in enumerate(self.nodes)}
        self.producer = {}
        for i, n in enumerate(self.nodes):
            for o in n.outputs:
                self.producer[id(o)] = i
        self.users = [sorted({self.index[id(u)] for u in us}) for us in self._user_nodes()]
        self.outputs = {id(v) for v in graph.outputs}
        self.group = list(range(len(self.nodes)))          # node -> group id
        self.members = {i: [i] for i in range(len(self.nodes))}
        self.frozen: set = set()                           # contraction groups
        self.refusals: dict = {}

    def _user_nodes(self):
        by_value = {}
        for n in self.nodes:
            for v in n.inputs:
                by_value.setdefault(id(v), []).append(n)
        return [[u for o in n.outputs for u in by_value.get(id(o), [])] for n in self.nodes]

    # -- group facts ----------------------------------------------------------------------
    def stored(self, members) -> list:
        inside = set(members)
        out = []
        for i in members:
            for o in self.nodes[i].outputs:
                ext = any(u not in inside for u in self._users_of_value(o))
                if ext or id(o) in self.outputs:
                    out.append(o)
        return out

    def _users_of_value(self, v: Value):
        i = self.producer[id(v)]
        return [u for u in self.users[i] if any(x is v for x in self.nodes[u].inputs)]

    def operands(self, members) -> list:
        inside = {id(o) for i in members for o in self.nodes[i].outputs}
        seen, out = set(), []
        for i in members:
            for v in self.nodes[i].inputs:
                if id(v) not in inside and id(v) not in seen:
                    seen.add(id(v))
                    out.append(v)
        return out

    def convex(self, members) -> bool:
        """No path from the group through an outside node back into the group."""
        inside = set(members)
        last = max(members)
        frontier = [u for i in members for u in self.users[i] if u not in inside]
        seen = set()
        while frontier:
            x = frontier.pop()
            if x in seen or x > last:
                continue
            seen.add(x)
            for u in self.users[x]:
                if u in inside:
                    return False
                frontier.append(u)
        return True

    def try_merge(self, group_ids) -> str | None:
        members = sorted(i for gid in set(group_ids) for i in self.members[gid])
        if any(gid in self.frozen for gid in group_ids):
            return "the consumer is a contraction epilogue group (complete)"
        if not self.convex(members):
            return "the group would not be convex (a path leaves it and comes back)"
        nodes = [self.nodes[i] for i in members]
        reason = check_group(nodes, self.operands(members), self.stored(members))
        if reason:
            return reason
        keep = min(group_ids)
        for gid in set(group_ids):
            if gid != keep:
                for i in self.members.pop(gid):
                    self.group[i] = keep
                    self.members[keep].append(i)
        self.members[keep].sort()
        return None

    # -- phase 1: contraction epilogues ---------------------------------------------------
    def contraction_epilogues(self) -> None:
        for i, n in enumerate(self.nodes):
            if n.op not in CONTRACTION_OPS or not n.outputs[0].type.dtype.is_float:
                continue
            cur = i
            while True:
                v = self.nodes[cur].outputs[0]
                us = self._users_of_value(v)
                if id(v) in self.outputs or len(us) != 1:
                    if cur == i:
                        why = ("its result is a graph output" if id(v) in self.outputs else
                               f"its result has {len(us)} consumers")
                        self.refusals[i] = (f"no epilogue: {why}, and the {n.op} kernel "
                                            f"stores one value")
                    break
                u = us[0]
                un = self.nodes[u]
                if not is_elementwise(un) or len(un.outputs) != 1:
                    break
                reason = self.try_merge([self.group[i], self.group[u]])
                if reason is not None:
                    self.refusals[u] = f"not an epilogue of %{n.outputs[0].name} ({n.op}): " \
                                       f"{reason}"
                    break
                self._absorb_side_nodes(self.group[i])
                cur = u
            if len(self.members[self.group[i]]) > 1:
                self.frozen.add(self.group[i])

    def _absorb_side_nodes(self, gid) -> None:
        """Producers of the group's operands that feed only the group (a broadcast bias, a
        relu mask) join it when the group stays valid."""
        changed = True
        while changed:
            changed = False
            for v in self.operands(self.members[gid]):
                p = self.producer.get(id(v))
                if p is None or self.group[p] != p or len(self.members[p]) != 1:
                    continue
                pn = self.nodes[p]
                if not (pn.op == "broadcast" or is_elementwise(pn)) or pn.op == "constant":
                    continue
                if all(self.group[u] == gid for u in self.users[p]) and \
                        id(pn.outputs[0]) not in self.outputs and \
                        self.try_merge([gid, p]) is None:
                    # a merge keeps the smaller group id: follow it, then rescan operands
                    gid = self.group[p]
                    changed = True
                    break

    # -- phase 2: producers into consumers ------------------------------------------------
    def producers_into_consumers(self) -> None:
        ipdom = self._post_dominators()
        for p in range(len(self.nodes) - 1, -1, -1):
            n = self.nodes[p]
            if not _fusible(n) or self.group[p] in self.frozen or n.op in CONTRACTION_OPS:
                continue
            user_groups = sorted({self.group[u] for u in self.users[p]} - {self.group[p]})
            if not user_groups:
                continue
            if len(user_groups) == 1 and id(n.outputs[0]) not in self.outputs:
                reason = self.try_merge([self.group[p], user_groups[0]])
                if reason is None:
                    continue
            else:
                # all consumers in one group (p shared by them), else its post-dominator's
                together = self.try_merge([self.group[p]] + user_groups)
                if together is None:
                    continue
                reason = self._merge_at_post_dominator(p, ipdom)
                if reason is None:
                    continue
            # a multi-output group: join the first consumer group that takes p as a result
            for gid in user_groups:
                if gid in self.frozen:
                    continue
                if self.try_merge([self.group[p], gid]) is None:
                    reason = None
                    break
            if reason is not None:
                ops = ", ".join(sorted({self.nodes[u].op for u in self.users[p]}))
                self.refusals[p] = f"not fused into its consumers ({ops}): {reason}"

    def _post_dominators(self) -> dict:
        dg = nx.DiGraph()
        dg.add_node("exit")
        for i, n in enumerate(self.nodes):
            dg.add_node(i)
            for u in self.users[i]:
                dg.add_edge(u, i)                    # reversed: consumer -> producer
            if not self.users[i] or any(id(o) in self.outputs for o in n.outputs):
                dg.add_edge("exit", i)
        return nx.immediate_dominators(dg, "exit")

    def _merge_at_post_dominator(self, p, ipdom) -> str:
        d = ipdom.get(p)
        if d is None or d == "exit":
            users = len({self.group[u] for u in self.users[p]})
            return (f"its results go to {users} groups that have no common post-dominator "
                    f"inside the graph (they meet only at the outputs)")
        on_path = self._nodes_between(p, d)
        groups = {self.group[x] for x in on_path} | {self.group[p], self.group[d]}
        reason = self.try_merge(sorted(groups))
        if reason is None:
            return None
        dn = self.nodes[d]
        return (f"fusing into its post-dominator %{dn.outputs[0].name} ({dn.op}) with "
                f"{len(groups) - 1} group(s) on the way: {reason}")

    def _nodes_between(self, p, d) -> set:
        fwd, stack = set(), [p]
        while stack:
            x = stack.pop()
            for u in self.users[x]:
                if u <= d and u not in fwd:
                    fwd.add(u)
                    stack.append(u)
        return {x for x in fwd if x != d}

    def record_unfusible(self) -> None:
        for i, n in enumerate(self.nodes):
            if i in self.refusals or not needs_kernel(n) or len(self.members[self.group[i]]) > 1:
                continue
            kind = get_op(n.op).fusion
            if n.op == "fused":
                continue
            if kind in ("injective", "opaque") or n.op == "argmax":
                what = "an index reduction" if n.op == "argmax" else kind
                self.refusals[i] = f"{n.op} is {what}: never fused"


def _build(graph: Graph, fuser: _Fuser):
    """The new graph: each group of 2+ nodes becomes one fused node, in a topological order
    close to the original one."""
    out = Graph(graph.name)
    out.inputs, out.initializers = graph.inputs, graph.initializers
    out.aliases, out.output_names = graph.aliases, graph.output_names
    out._next_id = graph._next_id
    units = {}
    for gid, members in fuser.members.items():
        units[gid] = members
    made = {}
    groups_by_kind: dict = {}
    # dependencies between units
    deps = {gid: set() for gid in units}
    for gid, members in units.items():
        for i in members:
            for v in graph.nodes[i].inputs:
                p = fuser.producer.get(id(v))
                if p is not None and fuser.group[p] != gid:
                    deps[gid].add(fuser.group[p])
    users = {gid: set() for gid in units}
    for gid, ds in deps.items():
        for d in ds:
            users[d].add(gid)
    waiting = {gid: len(ds) for gid, ds in deps.items()}
    ready = [(min(units[g]), g) for g, w in waiting.items() if w == 0]
    heapq.heapify(ready)
    new_nodes = []
    counter = 0
    while ready:
        _, gid = heapq.heappop(ready)
        members = units[gid]
        if len(members) == 1:
            new_nodes.append(graph.nodes[members[0]])
        else:
            node = _fused_node(graph, fuser, members, counter)
            kind = node.attrs["kind"]
            groups_by_kind[kind] = groups_by_kind.get(kind, 0) + 1
            counter += 1
            new_nodes.append(node)
            made[gid] = node
        for u in users[gid]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(ready, (min(units[u]), u))
    out.nodes = new_nodes
    out.outputs = list(graph.outputs)
    return out, groups_by_kind


def _fused_node(graph: Graph, fuser: _Fuser, members, counter: int) -> Node:
    nodes = [graph.nodes[i] for i in members]
    operands = fuser.operands(members)
    stored = fuser.stored(members)
    body = Graph(f"fused_{counter}")
    vmap = {}
    for k, v in enumerate(operands):
        vmap[id(v)] = body.add_input(v.name, v.type)
    for n in nodes:
        outs = [Value(o.name, o.type, None, k) for k, o in enumerate(n.outputs)]
        inner = Node(n.op, [vmap[id(v)] for v in n.inputs], n.attrs, outs, n.loc)
        for o_old, o_new in zip(n.outputs, outs):
            o_new.producer = inner
            vmap[id(o_old)] = o_new
        body.nodes.append(inner)
    for k, v in enumerate(stored):
        body.add_output(vmap[id(v)], f"r{k}")
    body.reserve_names()
    node = Node("fused", list(operands), {"kind": group_kind(nodes), "body": body},
                list(stored), fuse_locs([n.loc for n in nodes]))
    for k, v in enumerate(stored):
        v.producer, v.index = node, k
    return node


def analyse_fusion(graph: Graph) -> FusionReport:
    """Decide the groups of `graph` (which is not changed) and why other fusions were refused."""
    fuser = _Fuser(graph)
    fuser.contraction_epilogues()
    fuser.producers_into_consumers()
    fuser.record_unfusible()
    report = FusionReport(graph)
    for gid, members in sorted(fuser.members.items()):
        if len(members) > 1:
            report.groups.append((group_kind([graph.nodes[i] for i in members]), members))
    # a refusal is stale when the node ended up in one group with all of its users
    report.refusals = sorted((i, r) for i, r in fuser.refusals.items()
                             if not fuser.users[i] or
                             any(fuser.group[u] != fuser.group[i] for u in fuser.users[i]))
    report.fuser = fuser
    return report


@function_pass("fuse", "group elementwise chains, broadcasts, contraction epilogues and "
               "reductions with their prologues into fused nodes (one kernel each)")
def fuse(graph: Graph, ctx: PassContext | None = None):
    work = graph.clone()
    report = analyse_fusion(work)
    out, by_kind = _build(work, report.fuser)
    if ctx is not None:
        ctx.remarks.extend(report.lines())
    stats = {"fused_groups": len(report.groups),
             "fused_nodes": sum(len(m) for _, m in report.groups),
             "kernels_before": sum(needs_kernel(n) for n in graph.nodes),
             "kernels_after": sum(needs_kernel(n) for n in out.nodes),
             "refusals": len(report.refusals)}
    for kind in ("elementwise", "reduction", "contraction"):
        stats[f"groups_{kind}"] = by_kind.get(kind, 0)
    return out, stats
