"""Two "nodes" on one machine: two torchrun launches with --nnodes 2 (one process each, node
ranks 0 and 1) that meet through a c10d rendezvous on localhost, as on a cluster (docs/training.md
#multi-node), train a tiny config with gloo on the CPU and end with identical
parameters.

Rank 1 writes nothing itself (rank 0 alone saves), so each process runs train.py's main through a
small wrapper that dumps the model's state after every epoch. Ranks draw different masks (the
seed is offset by the rank), so two processes that did not average their gradients would end
with different parameters.
"""
import os
import socket
import subprocess
import sys
import textwrap

import torch

from conftest import ROOT
from train_helpers import load_ckpt, subprocess_env, tensors_differing, train_args

WORKER = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    import torch
    import byov.training.loop as trainer
    import train

    original = trainer.train_one_epoch

    def dumping(t, *args, **kwargs):  # t: the Training; t.method is the unwrapped method
        out = original(t, *args, **kwargs)
        state = {{k: v.detach().cpu().clone() for k, v in t.method.state_dict().items()}}
        torch.save(state, os.path.join({dump!r}, "rank%s.pt" % os.environ["RANK"]))
        return out

    trainer.train_one_epoch = dumping
    train.main(sys.argv[1:])
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_nodes_c10d_rendezvous_end_identical(synthetic_root, tiny_clip_dir, train_cache_dir,
                                                 tmp_path):
    run_dir, dump = str(tmp_path / "run"), str(tmp_path / "dump")
    os.makedirs(dump)
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER.format(root=ROOT, dump=dump))
    args = train_args(synthetic_root, tiny_clip_dir, run_dir, train_cache_dir, epochs=2,
                      log_every=1)
    port = free_port()
    procs = []
    for node_rank in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
               "--node_rank", str(node_rank), "--nproc_per_node", "1",
               "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
               "--rdzv-id", "byov-multinode-test", "--local-addr", "127.0.0.1",
               str(worker), *args]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=subprocess_env(), text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    outputs = []
    try:
        for p in procs:
            outputs.append(p.communicate(timeout=240)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for node_rank, (p, out) in enumerate(zip(procs, outputs)):
        assert p.returncode == 0, f"node {node_rank}:\n{out[-4000:]}"
    assert "world size 2" in outputs[0] + outputs[1]

    rank0 = torch.load(os.path.join(dump, "rank0.pt"), weights_only=True)
    rank1 = torch.load(os.path.join(dump, "rank1.pt"), weights_only=True)
    assert tensors_differing(rank0, rank1) == []  # bitwise: the gradients were averaged
    ckpt = load_ckpt(run_dir)
    assert ckpt["epoch"] == 1
    # the BYOV encoder's entries, whatever module holds it ("model.encoder.pos_embed", ...)
    names = list(ckpt["encoder"])
    prefixes = [k[:-len(names[0])] for k in rank0 if k.endswith("." + names[0])]
    prefix = [p for p in prefixes if all(p + n in rank0 for n in names)
              and "target" not in p]
    assert len(prefix) == 1, prefixes
    encoder = {n: rank0[prefix[0] + n] for n in names}
    assert tensors_differing(encoder, ckpt["encoder"]) == []  # rank 0 saved what both hold
    first = load_ckpt(run_dir, "epoch_0000.pth")
    assert tensors_differing(first["encoder"], ckpt["encoder"]) != []  # and it trained
