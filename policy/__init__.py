"""The OpenVLA-style vision-language-action policy: model, action tokenizer, training, inference."""
