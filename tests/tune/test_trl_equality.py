"""sft and dpo compute what TRL computes: the same tokens, masks, losses and gradients, on the same batch and
weights (a random tiny GPT-2 from a config), to 1e-6. TRL's own trainers are built offline here and their
``compute_loss`` called on one batch; SimPO, which TRL has only in its experimental CPO trainer, is compared
with that trainer's ``get_batch_logps`` and ``cpo_loss``."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from support.tune import CHATS, PAIRS, gpt2

from tlcli_tune.chat import ChatFormat
from tlcli_tune.data import Pair
from tlcli_tune.losses import chosen_nll, preference_loss
from tlcli_tune.model import TunedLM, pad_batch, row_sums
from tlcli_tune.task import collate_pairs

TOL = 1e-6


def _grads(model) -> dict[str, torch.Tensor]:
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


def _assert_same_grads(ours: dict, theirs: dict) -> None:
    assert ours.keys() == theirs.keys() and ours
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], atol=TOL, rtol=0, msg=name)


def _common_args(tmp_path) -> dict:
    return dict(output_dir=str(tmp_path / "trl"), report_to=[], use_cpu=True, bf16=False, fp16=False,
                gradient_checkpointing=False, per_device_train_batch_size=8, disable_tqdm=True, seed=0)


def test_sft_tokens_masks_loss_and_gradients_equal_trl(tokenizer, tmp_path):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    model = gpt2(tokenizer)
    theirs = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = SFTTrainer(model=theirs, args=SFTConfig(**_common_args(tmp_path), assistant_only_loss=True,
                                                          max_length=None),
                             train_dataset=Dataset.from_list([{"messages": m} for m in CHATS]),
                             processing_class=tokenizer)
    fmt = ChatFormat(tokenizer)
    rows = [fmt.sft(messages) for messages in CHATS]
    prepared = [trainer.train_dataset[i] for i in range(len(CHATS))]
    # the same token ids, and the same tokens learn (the assistant's reply and its end-of-text token)
    assert [r["input_ids"] for r in prepared] == [ids for ids, _ in rows]
    assert [r["labels"] for r in prepared] == [labels for _, labels in rows]

    batch = trainer.data_collator(prepared)
    trl_loss = trainer.compute_loss(trainer.model, batch)
    trl_loss.backward()

    ours = TunedLM(model)
    our_batch = pad_batch(rows, tokenizer.pad_token_id)
    our_loss = -ours(**our_batch).mean()
    our_loss.backward()

    assert abs(our_loss.item() - trl_loss.item()) < TOL
    _assert_same_grads(_grads(ours.lm), _grads(trainer.model))


def test_incremental_masks_equal_the_template_markers(tokenizer):
    """A template without {% generation %} blocks is masked turn by turn; on the plain template (which
    has the blocks) both ways agree, multi-turn and system messages included."""
    marked = ChatFormat(tokenizer)
    unmarked = ChatFormat(tokenizer)
    unmarked.marked = False
    assert marked.marked
    for messages in CHATS:
        assert unmarked.sft(messages) == marked.sft(messages)
        ids, labels = marked.sft(messages)
        learnt = tokenizer.decode([t for t in labels if t != -100])
        replies = [m["content"] for m in messages if m["role"] == "assistant"]
        assert learnt.replace(" ", "") == "".join(r + "[SEP]" for r in replies).replace(" ", "")


def _pairs():
    return [Pair(p["prompt"], p["chosen"], p["rejected"]) for p in PAIRS]


def _policy_and_reference(tokenizer):
    """Two different random models: the reference, and a policy a little away from it."""
    reference = gpt2(tokenizer, seed=1)
    policy = copy.deepcopy(reference)
    torch.manual_seed(2)
    with torch.no_grad():
        for param in policy.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return policy, reference


@pytest.mark.parametrize("loss, trl_loss_type, sft_weight", [("dpo", "sigmoid", 0.0), ("ipo", "ipo", 0.0),
                                                              ("dpo", "sigmoid", 0.5)])
def test_dpo_and_ipo_tokens_loss_and_gradients_equal_trl(tokenizer, tmp_path, loss, trl_loss_type, sft_weight):
    """--sft-weight W is TRL's loss_type [LOSS, "sft"] with loss_weights [1, W] (RPO)."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    policy, reference = _policy_and_reference(tokenizer)
    theirs, their_ref = copy.deepcopy(policy), copy.deepcopy(reference)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = DPOTrainer(model=theirs, ref_model=their_ref,
                             args=DPOConfig(**_common_args(tmp_path), beta=0.3,
                                            loss_type=[trl_loss_type, "sft"] if sft_weight else [trl_loss_type],
                                            loss_weights=[1.0, sft_weight] if sft_weight else None,
                                            precompute_ref_log_probs=False, max_length=None),
                             train_dataset=Dataset.from_list(PAIRS), processing_class=tokenizer)
    fmt = ChatFormat(tokenizer)
    rows = [fmt.pair(pair) for pair in _pairs()]
    prepared = [trainer.train_dataset[i] for i in range(len(PAIRS))]
    assert [(r["prompt_ids"], r["chosen_ids"], r["rejected_ids"]) for r in prepared] == rows

    batch = trainer.data_collator([{k: r[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")} for r in prepared])
    trainer.model.train()
    trl_value = trainer.compute_loss(trainer.model, batch)
    trl_value.backward()

    # ours: reference log-probs computed once (as the job does, through the cache's compute path), then the loss
    from tlcli_tune.reference import pair_logps

    collate = lambda items: collate_pairs(items, tokenizer.pad_token_id)  # noqa: E731
    ref = pair_logps(TunedLM(reference), rows, list(range(len(rows))), collate, torch.device("cpu"), 2, base=False)
    ours = TunedLM(policy)
    ours.train()
    our_batch = collate_pairs([(*row, ref[i]) for i, row in enumerate(rows)], tokenizer.pad_token_id)
    assert torch.equal(our_batch["input_ids"][:, : batch["input_ids"].shape[1]], batch["input_ids"])
    logps = ours(input_ids=our_batch["input_ids"], labels=our_batch["labels"],
                 attention_mask=our_batch["attention_mask"])
    sums, tokens = row_sums(logps, our_batch["labels"])
    n = len(rows)
    out = preference_loss(loss, 0.3, sums[:n], sums[n:], tokens[:n], tokens[n:], ref[:, 0], ref[:, 1])
    our_value = out.losses.mean() + sft_weight * chosen_nll(sums[:n], tokens[:n])
    our_value.backward()

    assert abs(our_value.item() - trl_value.item()) < TOL
    _assert_same_grads(_grads(ours.lm), _grads(trainer.model))
    # the logged figures are TRL's too
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    assert abs(metrics["rewards/accuracies"] - float((out.chosen_rewards > out.rejected_rewards).float().mean())) < TOL
    assert abs(metrics["rewards/margins"] - float((out.chosen_rewards - out.rejected_rewards).mean())) < 1e-5
    assert abs(metrics["logps/chosen"] - float(sums[:n].detach().mean())) < 1e-4
    assert abs(metrics["logps/rejected"] - float(sums[n:].detach().mean())) < 1e-4


def test_simpo_loss_and_gradients_equal_trl_cpo(tokenizer):
    """TRL has SimPO in its experimental CPO trainer (loss_type="simpo", cpo_alpha=0): its
    ``get_batch_logps`` (average log-probs) and ``cpo_loss``, called on our batch's logits, against ours."""
    from types import SimpleNamespace

    from trl.experimental.cpo.cpo_trainer import CPOTrainer

    policy, _ = _policy_and_reference(tokenizer)
    fmt = ChatFormat(tokenizer)
    rows = [fmt.pair(pair) for pair in _pairs()]
    batch = collate_pairs([(*row, torch.zeros(2)) for row in rows], tokenizer.pad_token_id)
    n = len(rows)
    beta, gamma = 2.0, 1.0

    theirs = copy.deepcopy(policy)
    logits = theirs(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    average = CPOTrainer.get_batch_logps(logits, batch["labels"], average_log_prob=True)
    trainer = SimpleNamespace(alpha=0.0, loss_type="simpo", simpo_gamma=gamma, beta=beta, label_smoothing=0.0,
                              accelerator=SimpleNamespace(device=torch.device("cpu")))
    trl_losses, trl_chosen, trl_rejected = CPOTrainer.cpo_loss(trainer, average[:n], average[n:])
    trl_losses.mean().backward()

    ours = TunedLM(policy)
    logps = ours(input_ids=batch["input_ids"], labels=batch["labels"], attention_mask=batch["attention_mask"])
    sums, tokens = row_sums(logps, batch["labels"])
    out = preference_loss("simpo", beta, sums[:n], sums[n:], tokens[:n], tokens[n:], gamma=gamma)
    out.losses.mean().backward()

    torch.testing.assert_close(out.losses, trl_losses, atol=TOL, rtol=0)
    torch.testing.assert_close(out.chosen_rewards, trl_chosen, atol=TOL, rtol=0)
    torch.testing.assert_close(out.rejected_rewards, trl_rejected, atol=TOL, rtol=0)
    _assert_same_grads(_grads(ours.lm), _grads(theirs))
