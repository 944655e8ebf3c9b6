"""Video question answering: a HiLight-style VideoLM with TokenMining and long-stream memory."""
