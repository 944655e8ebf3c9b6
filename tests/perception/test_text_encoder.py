"""perception.text_encoder: MiniLM from the installed wheel, offline, frozen, cached per string, and
per-token states that keep the words a pooled vector blurs."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

from perception.errors import PerceptionError
from perception.text_encoder import (DIM, PACKAGE, EncoderId, TextEncoder, encoder_id,
                                     shared_text_encoder)


@pytest.fixture(scope="module")
def enc():
    return shared_text_encoder()


def test_loads_and_encodes_with_the_network_unavailable(tmp_path):
    script = textwrap.dedent("""
        import socket

        def refuse(*args, **kwargs):
            raise OSError("network disabled by the test")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        from perception.text_encoder import TextEncoder
        out = TextEncoder().encode(["pick up the red cube"])
        print(tuple(out.states.shape), tuple(out.pooled.shape))
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=300, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == f"(1, 7, {DIM}) (1, {DIM})"


def test_frozen_by_default_and_shared(enc):
    assert enc is shared_text_encoder()
    assert enc.frozen and not enc.model.training
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()  # a frozen encoder inside a model being trained stays in eval mode (no dropout)
    assert not enc.model.training


def test_shapes_mask_and_unit_pooled_vectors(enc):
    out = enc.encode(["touch the cube", "push the green cylinder over to the left please"])
    n, t, d = out.states.shape
    assert (n, d) == (2, DIM) and out.mask.shape == (2, t) and out.pooled.shape == (2, DIM)
    assert out.mask[1].all() and out.mask[0].sum() == 5  # [CLS] touch the cube [SEP]
    assert not out.mask[0, 5:].any() and torch.all(out.states[0, 5:] == 0)
    torch.testing.assert_close(out.pooled.norm(dim=-1), torch.ones(2))
    # a batch is the same as its strings one by one (padding changes nothing)
    alone = enc.encode("touch the cube")
    torch.testing.assert_close(alone.states[0], out.states[0, :5], atol=1e-5, rtol=1e-4)


def test_the_cache_encodes_each_string_once(enc):
    calls, strings = enc.forward_calls, enc.encoded_strings
    a, b = "slide the orange cube to the right (cache test)", "lift the pink cylinder (cache test)"
    first = enc.encode([a, b, a])
    assert (enc.forward_calls - calls, enc.encoded_strings - strings) == (1, 2)
    again = enc.encode([b, a])
    again_single = enc.encode(a)
    assert (enc.forward_calls - calls, enc.encoded_strings - strings) == (1, 2)
    torch.testing.assert_close(again.pooled[1], first.pooled[0])
    torch.testing.assert_close(again_single.states[0], first.states[0, : again_single.states.shape[1]])
    enc.encode([a + " "])  # the key is the exact string
    assert enc.encoded_strings - strings == 3


def test_the_cache_is_bounded_lru():
    small = TextEncoder(cache_size=2)
    small.encode(["one", "two"])
    small.encode("one")  # "one" is now the most recent
    small.encode("three")  # evicts "two"
    n = small.encoded_strings
    small.encode(["one", "three"])
    assert small.encoded_strings == n
    small.encode("two")
    assert small.encoded_strings == n + 1


def test_an_unfrozen_encoder_trains_and_does_not_cache():
    enc = TextEncoder(frozen=False)
    out = enc.encode(["pick up the red cube"])
    out.pooled.sum().backward()
    assert enc.model.embeddings.word_embeddings.weight.grad is not None
    enc.encode(["pick up the red cube"])
    assert enc.encoded_strings == 2


def test_paraphrases_are_closer_than_unrelated_sentences(enc):
    p = enc.encode(["pick up the red cube", "please lift the red block",
                    "what is the weather like today", "push the green cylinder to the left",
                    "slide the green cylinder leftwards", "tell me a joke"]).pooled
    sim = p @ p.T
    assert sim[0, 1] > sim[0, 2] + 0.3 and sim[0, 1] > sim[0, 5] + 0.3
    assert sim[3, 4] > sim[3, 2] + 0.3 and sim[3, 4] > sim[3, 5] + 0.3


def test_token_states_keep_the_colour_that_the_pooled_vector_blurs(enc):
    out = enc.encode(["pick up the red cube", "pick up the blue cube"])
    # [CLS] pick up the red cube [SEP]: the colour is token 4 in both
    token_cos = torch.nn.functional.cosine_similarity(out.states[0], out.states[1], dim=-1)
    pooled_cos = float(out.pooled[0] @ out.pooled[1])
    assert pooled_cos > 0.75  # measured 0.825: the sentences look alike as a whole
    assert float(token_cos[4]) < 0.6  # measured 0.41: the colour word differs
    assert 1 - float(token_cos[4]) > 2.5 * (1 - pooled_cos)  # measured 0.59 vs 0.175
    assert int(token_cos.argmin()) == 4  # and it is the token that differs most


def test_encoder_id_names_the_weights_and_refuses_another():
    ident = encoder_id()
    assert ident.package == PACKAGE and ident.version == "0.1.0" and len(ident.weights_sha256) == 64
    assert encoder_id() == ident  # cached
    ident.check(ident.to_dict())
    ident.check(None)  # a checkpoint without a pretrained encoder references none
    other = EncoderId(PACKAGE, "0.1.0", "0" * 64).to_dict()
    with pytest.raises(PerceptionError, match="different text encoder: weights_sha256") as exc:
        ident.check(other, "checkpoints/x")
    assert "\n" not in str(exc.value) and str(exc.value).startswith("checkpoints/x")
