"""Train or fine-tune the VLA: ``embodied train --dataset DIR`` (or ``torchrun ... -m policy.train``).

One loop for every case: from scratch, fine-tuning a checkpoint (``--init``), LoRA (``--lora``),
resuming (``--resume RUN_DIR``), one process or DDP. Per step: ``grad_accum`` micro-batches per
rank, global batch = ``batch_size`` split evenly over ranks, AdamW, linear warm-up then cosine decay.
A run directory holds ``config.json``, ``metrics.jsonl``, ``curve.png``, ``checkpoints/step_N/``
(model + optimizer + sampler position) and the final ``checkpoint/``.

``--lm smollm2`` builds the policy on pretrained SmolLM2 under LoRA (``policy.modeling_vla``): the
base is dequantized into its cache once (said on the first run, it takes a while), only the
adapters and our own modules train, and every checkpoint is adapter-only.

``--text-encoder minilm`` conditions the policy on the frozen pretrained MiniLM: every distinct
instruction of the dataset is encoded once, before the first step, into a table of token states
indexed by task like the token ids are, so a step costs what it costs with learned tokens (plus
the 384 -> hidden projection); the encoder itself never trains.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common.schedule import warmup_cosine
from policy.configuration_vla import VLAConfig
from policy.errors import PolicyError

from policy.train_config import TrainConfig, add_arguments, model_config_from_args


# --- distributed helpers -------------------------------------------------------------------------
def _dist_setup(device: str) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return rank, world, dev


def _broadcast(obj: Any, world: int) -> Any:
    if world == 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _all_mean(values: list[float], world: int) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64)
    if world > 1:
        torch.distributed.all_reduce(t)
        t /= world
    return t.tolist()


# --- schedule, stats ------------------------------------------------------------------------------
def check_stats_match(ckpt_stats: dict, ds_stats: dict, tol: float = 0.25) -> None:
    """Refuse to fine-tune when the dataset's action range differs from the checkpoint's."""
    lo, hi = np.asarray(ckpt_stats["q01"]), np.asarray(ckpt_stats["q99"])
    dlo, dhi = np.asarray(ds_stats["q01"]), np.asarray(ds_stats["q99"])
    span = np.maximum(hi - lo, 1e-8)
    worst = float(np.max(np.maximum(np.abs(lo - dlo), np.abs(hi - dhi)) / span))
    if worst > tol:
        raise PolicyError(f"the dataset's action statistics differ from the checkpoint's by "
                          f"{worst:.0%} of the range; pass --restat to re-normalise with the dataset's")


def _state_stats(ds: Any) -> dict | None:
    st = ds.stats.get("observation.state")
    return {"mean": list(st["mean"]), "std": list(st["std"])} if st else None


# --- model set-up ---------------------------------------------------------------------------------
def build_or_load(cfg: TrainConfig, model_cfg: VLAConfig, ds: Any, table_instr: list[str],
                  gripper_dim: int | None = None):
    from policy.action_tokenizer import ActionTokenizer
    from policy.modeling_vla import VLAModel

    if cfg.init:
        model = VLAModel.from_pretrained(cfg.init).train()
        if not model.cfg.pretrained_lm:  # a pretrained base keeps its adapters apart: they train on
            model.merge_lora()
            model.set_trainable()  # merged adapters leave a plain model: all of it trains
        if cfg.restat:
            model.action_tokenizer = ActionTokenizer(ds.stats["action"], model.cfg.n_bins,
                                                     gripper_dim=model.action_tokenizer.gripper_dim)
            model.state_stats = _state_stats(ds) if model.state_stats else None
        else:
            check_stats_match(model.action_tokenizer.to_dict(), ds.stats["action"])
        if cfg.rechunk and cfg.rechunk != model.cfg.chunk:
            model.resize_chunk(cfg.rechunk)
        model.cfg.committed_steps = model_cfg.committed_steps  # the one other model flag a fine-tune sets
    else:
        if model_cfg.pretrained_lm:  # its LoRA rank is the trainer's flag (0: the default)
            model_cfg.lora_rank = cfg.lora_rank
        model = VLAModel.build(model_cfg, ds.stats["action"], table_instr, _state_stats(ds),
                               gripper_dim=gripper_dim)
    if model_cfg.film and model.film is None:
        model.add_film()  # starts as the identity: the checkpoint's predictions are unchanged
        model.set_trainable()
    if cfg.lora and not model.cfg.pretrained_lm:  # a pretrained base has its adapters already
        model.add_lora(cfg.lora_rank or 32)
    return model


def _latest_checkpoint(run_dir: Path) -> Path:
    steps = sorted((run_dir / "checkpoints").glob("step_*"))
    if not steps:
        raise PolicyError(f"nothing to resume: {run_dir / 'checkpoints'} has no step_* checkpoint")
    return steps[-1]


# --- the loop -------------------------------------------------------------------------------------
def train(cfg: TrainConfig, model_cfg: VLAConfig | None = None, dataset: Any = None) -> Path:
    """Run training; returns the final checkpoint directory. ``dataset`` overrides ``cfg.dataset``."""
    from torch.nn.parallel import DistributedDataParallel

    from policy.action_tokenizer import GRIPPER_DIM
    from policy.data import (StreamSampler, check_dataset_stats, load_frames, make_batch,
                             our_action_convention, read_episode)
    from policy.features import (camera_shape, check_vectors, dataset_cameras, dataset_features,
                                 parse_camera_map, resolve_cameras, sizes_only,
                                 split_episodes)
    from policy.modeling_vla import VLAModel
    from common.runs import RunLog

    rank, world, device = _dist_setup(cfg.device)
    resume_dir = Path(cfg.resume) if cfg.resume else None
    if resume_dir is not None:  # the run's own configs win over flags
        saved = json.loads((resume_dir / "config.json").read_text())
        keep = {"save_every": cfg.save_every, "stop_after": cfg.stop_after}
        if "lora_r" in saved["train"]:  # runs written before the flag became --lora-rank
            saved["train"]["lora_rank"] = saved["train"].pop("lora_r")
        cfg = TrainConfig(**{**saved["train"], **keep, "resume": str(resume_dir)})
        model_cfg = VLAConfig.from_dict(saved["model"])
    model_cfg = model_cfg or VLAConfig()
    if model_cfg.pretrained_lm and rank == 0 and not cfg.init:
        from perception.errors import PerceptionError
        from perception.pretrained_lm import resolve_lm

        try:  # dequantized once into the cache: say so, it takes a while
            resolve_lm(model_cfg.pretrained_lm, log=lambda line: print(line, flush=True))
        except PerceptionError as exc:
            raise PolicyError(str(exc)) from None
    if (cfg.rechunk and not cfg.init) or cfg.rechunk < 0:
        raise PolicyError(f"--rechunk {cfg.rechunk}: it resizes the chunk of the checkpoint given by "
                          "--init (a new policy takes --chunk K)")
    if cfg.batch_size % (world * cfg.grad_accum):
        raise PolicyError(f"batch_size {cfg.batch_size} is not divisible by ranks x grad_accum "
                          f"= {world * cfg.grad_accum}")
    micro = cfg.batch_size // (world * cfg.grad_accum)

    if dataset is None:
        if not cfg.dataset:
            raise PolicyError("--dataset DIR is required")
        from policy.data import open_dataset

        dataset = open_dataset(cfg.dataset)
    torch.manual_seed(cfg.seed)
    init_features = None
    if cfg.init:  # cameras and sizes come from the checkpoint being fine-tuned
        add_film = model_cfg.film  # model flags that apply on top of a checkpoint: --film and
        add_committed = model_cfg.committed_steps  # --committed-steps (0: keep the checkpoint's)
        wanted_text = model_cfg.text_encoder
        init_model = VLAModel.from_pretrained(cfg.init)
        model_cfg = init_model.cfg
        init_features = init_model.dataset_features or sizes_only(init_model)
        del init_model
        model_cfg.film = model_cfg.film or add_film
        if cfg.rechunk:  # the targets are read for the chunk the fine-tuned model will predict
            model_cfg.chunk = cfg.rechunk
            model_cfg.replan = min(model_cfg.replan, cfg.rechunk)
            model_cfg.committed_steps = min(model_cfg.committed_steps, cfg.rechunk - 1)
        if add_committed:
            if add_committed >= model_cfg.chunk or model_cfg.decoding != "parallel":
                raise PolicyError(f"--committed-steps {add_committed}: needs a parallel-decoding "
                                  f"checkpoint whose chunk is longer (this one: {model_cfg.chunk}, "
                                  f"{model_cfg.decoding})")
            model_cfg.committed_steps = add_committed
        if wanted_text != "none" and wanted_text != model_cfg.text_encoder:
            raise PolicyError(f"--text-encoder {wanted_text}: the checkpoint {cfg.init} reads "
                              f"text_encoder={model_cfg.text_encoder!r}; its instruction tokens "
                              "cannot be swapped by fine-tuning, train a new policy instead")
    # What the dataset holds decides the model's sizes: its cameras feed the model's inputs (by
    # name, or through --camera-map), its action size sizes the action tokens, its state the
    # state input; all of it, and the train/held-out split, is recorded in the checkpoint.
    first = read_episode(dataset, 0, cameras=[])  # sizes only: no video decoded (the reader)
    if "action" not in first:
        raise PolicyError("the dataset has no 'action' feature; a policy learns from recorded actions")
    cameras = resolve_cameras(model_cfg.camera_list, dataset_cameras(dataset, first),
                              parse_camera_map(cfg.camera_map))
    if init_features is not None:  # the fine-tuned checkpoint's state and action must match
        check_vectors(init_features, dataset, first)
    else:
        model_cfg.action_dim = int(np.asarray(first["action"]).shape[-1])
    check_dataset_stats(dataset, model_cfg.action_dim)
    model_cfg.state_dim = int(np.asarray(dataset.stats["observation.state"]["mean"]).shape[0]) \
        if "observation.state" in dataset.stats else 0
    model_cfg.obs_image_size = camera_shape(dataset, first, cameras[model_cfg.camera_list[0]])[0]
    train_eps, held_out = split_episodes(dataset.num_episodes, cfg.holdout_episodes, cfg.max_episodes)
    features = dataset_features(dataset, first, cameras, train_eps, held_out)
    del first
    ours = our_action_convention(dataset)
    with_targets = model_cfg.aux_target_weight > 0
    if with_targets and not (Path(dataset.root) / "gt").is_dir():
        # Data from elsewhere (LeRobot's own writer, a real robot) has no simulator ground truth,
        # so the auxiliary target loss has nothing to learn from: fine-tune without it (its head
        # stays in the checkpoint, unused) rather than refuse the dataset.
        print(f"note: {dataset.root} has no simulator ground truth (gt/): training without the "
              "auxiliary target loss")
        with_targets = False
    table = load_frames(dataset, [cameras[c] for c in model_cfg.camera_list], model_cfg.image_size,
                        model_cfg.chunk, cfg.drop_noops and ours, episodes=train_eps,
                        with_targets=with_targets)

    start_step = 0
    if resume_dir is not None:
        ckpt = _latest_checkpoint(resume_dir)
        model = VLAModel.from_pretrained(ckpt).train()
        model.set_trainable()
        state = json.loads((ckpt / "trainer_state.json").read_text())
        start_step = int(state["step"])
        run_dir = resume_dir
    else:
        model = build_or_load(cfg, model_cfg, dataset, table.instructions,
                              gripper_dim=GRIPPER_DIM if ours else None).train()
        run_dir = None
        if rank == 0:
            from common.runs import new_run_dir

            run_dir = Path(cfg.out) if cfg.out else new_run_dir("policy")
            run_dir.mkdir(parents=True, exist_ok=True)
            from common.atomic import write_json

            write_json(run_dir / "config.json", {"train": cfg, "model": model.cfg,
                                                 "world_size": world})
        run_dir = Path(_broadcast(str(run_dir) if run_dir else "", world))
    if model.state_proj is None:  # the features it reads: a model without a state input needs none
        features["state"] = {"dim": 0, "names": None}
    model.dataset_features = features
    model.to(device)
    # Every distinct instruction once: token ids, or the pretrained encoder's token states (one
    # MiniLM pass each, here and never again); make_batch indexes them by task.
    t_text = time.perf_counter()
    text_ids, text_mask = model.encode_text(table.instructions)
    if model.cfg.pretrained_text and rank == 0:
        print(f"text encoder {model.cfg.text_encoder}: {len(table.instructions)} distinct "
              f"instructions encoded in {time.perf_counter() - t_text:.2f} s", flush=True)

    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    optim = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                               {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr,
                              betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda s: warmup_cosine(s, cfg.steps, cfg.warmup_steps, cfg.min_lr_ratio))
    if start_step:
        ckpt = _latest_checkpoint(run_dir)
        opt_state = torch.load(ckpt / "optimizer.pt", weights_only=True, map_location="cpu")
        optim.load_state_dict(opt_state["optimizer"])
        sched.load_state_dict(opt_state["scheduler"])

    # Some backbone parameters (e.g. DINOv2's mask token) never get a gradient; DDP must know.
    net = DistributedDataParallel(model, find_unused_parameters=True) if world > 1 else model
    order = table.sampling_order(cfg.early_frames, cfg.early_repeat)
    sampler = StreamSampler(len(order), cfg.seed, position=start_step * cfg.batch_size)
    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    log = RunLog(run_dir) if rank == 0 else None
    t0 = time.perf_counter()
    window: list[list[float]] = []

    def save(step: int, final: bool = False) -> None:
        if rank != 0:
            return
        target = run_dir / ("checkpoint" if final else f"checkpoints/step_{step:06d}")
        trainer_state = {"step": step, "sampler": sampler.state_dict(), "seed": cfg.seed}

        def extra(tmp: Path) -> None:
            (tmp / "trainer_state.json").write_text(json.dumps(trainer_state))
            if not final:
                torch.save({"optimizer": optim.state_dict(), "scheduler": sched.state_dict()},
                           tmp / "optimizer.pt")

        model.save_pretrained(target, write_extra=extra,
                              bundle_text_encoder=final and cfg.bundle_text_encoder)

    last = min(cfg.steps, cfg.stop_after) if cfg.stop_after else cfg.steps
    for step in range(start_step, last):
        global_idx = order[sampler.next(cfg.batch_size)]
        # Augmentation is drawn for the whole global batch from a (seed, step) generator, then
        # sliced: the same sample gets the same crop however the batch is split over ranks/micro.
        aug = augment_global(table, global_idx, cfg.seed * 7919 + step) if cfg.augment else None
        optim.zero_grad(set_to_none=True)
        stats = np.zeros(4)
        for a in range(cfg.grad_accum):
            lo = (a * world + rank) * micro
            idx = global_idx[lo:lo + micro]
            batch = make_batch(table, idx, text_ids, text_mask, model.action_tokenizer,
                               model.state_stats)
            if aug is not None:
                batch["images"] = aug[lo:lo + micro]
            batch = {k: v.to(device) for k, v in batch.items()}
            committed = None
            if model.cfg.committed_steps:  # real-time chunking: 0..N recorded actions given, per sample,
                # from a (seed, step, micro-batch) generator so a resumed run draws the same
                draw = torch.Generator().manual_seed(cfg.seed * 7919 + step * 64 + lo)
                committed = torch.randint(0, model.cfg.committed_steps + 1, (len(idx),),
                                          generator=draw).to(device)
            sync = a == cfg.grad_accum - 1 or world == 1
            ctx = net.no_sync() if (world > 1 and not sync) else contextlib.nullcontext()
            with ctx, torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                out = net(batch["images"], batch["text_ids"], batch["text_mask"], batch["state"],
                          batch["target_bins"], batch["target_norm"], batch.get("aux_target"),
                          committed)
                (out["loss"] / cfg.grad_accum).backward()
            pred = model.action_tokenizer.from_bins(
                out["pred_bins"].cpu().numpy().reshape(batch["chunk"].shape))
            l1 = float(np.abs(pred - batch["chunk"].cpu().numpy()).mean())
            aux = float(out["aux_loss"]) if "aux_loss" in out else 0.0
            stats += np.array([out["loss"].item(), out["accuracy"].item(), l1, aux]) / cfg.grad_accum
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        sched.step()
        window.append(stats.tolist())
        done = step + 1
        if done % cfg.log_every == 0 or done == last:
            loss, acc, l1, aux = _all_mean(np.mean(window, axis=0).tolist(), world)
            window = []
            if log is not None:
                extra = {"aux_loss": aux} if model.cfg.aux_target_weight > 0 else {}
                log.log(step=done, loss=loss, action_accuracy=acc, l1=l1, **extra,
                        lr=sched.get_last_lr()[0], elapsed_s=round(time.perf_counter() - t0, 2))
                print(f"step {done}/{cfg.steps} loss {loss:.4f} acc {acc:.3f} l1 {l1:.5f}",
                      flush=True)
        if done % cfg.save_every == 0 and done < last:
            save(done)
    save(last)  # a resumable checkpoint at the end, and the final one
    save(last, final=True)
    if log is not None:
        log.close()
        plot_curve(run_dir / "metrics.jsonl", run_dir / "curve.png")
    if world > 1:
        torch.distributed.barrier()
    return run_dir / "checkpoint"


def augment_global(table: Any, global_idx: np.ndarray, seed: int) -> torch.Tensor:
    """Augmented images of the whole global batch (cheap at these sizes; ranks slice theirs)."""
    from perception.image import to_tensor
    from policy.data import augment

    return augment(to_tensor(table.images[global_idx]), torch.Generator().manual_seed(seed))


def plot_curve(metrics: Path, png: Path) -> None:
    """Loss, action-token accuracy and decoded-action L1 against step, one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "loss" in r]
    if not rows:
        return
    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, key, title in zip(axes, ("loss", "action_accuracy", "l1"),
                              ("loss", "action-token accuracy", "L1 of decoded actions")):
        ax.plot(steps, [r[key] for r in rows])
        ax.set_title(title)
        ax.set_xlabel("step")
        if key != "action_accuracy":
            ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)


def run_from_args(args: argparse.Namespace) -> int:
    from common.config import from_args

    cfg = from_args(TrainConfig, args)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model_cfg = model_config_from_args(args)
    ckpt = train(cfg, model_cfg)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"checkpoint: {ckpt}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``torchrun -m policy.train`` (same flags as ``embodied train``)."""
    parser = argparse.ArgumentParser(prog="policy.train", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except PolicyError as exc:
        print(f"policy.train: error: {exc}")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
