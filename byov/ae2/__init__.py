"""AE2 (Xue & Grauman, NeurIPS 2023) baselines: its alignment objectives, its frame-pair
embedder and its clip sampler, reproducing the released code (zihuixue/AlignEgoExo).

Modules: softdtw (the soft-DTW core), dtw / tcc / vava (the objectives), losses (the
dispatcher `alignment_loss`), embedder (`AE2Embedder`), sampling (`sample_clip`,
`positive_steps`). Nothing is imported here, so importing one module stays cheap.
"""
