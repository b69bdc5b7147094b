"""The fixed-point target (Lava 0.10 bit-accurate LIF/Dense): its widths and network description (`spec`), the float
-> integer mapping (`calibrate`, `quantise`, `scale_search`), the integer arithmetic that runs it (`emulator`) and
quantisation-aware fine-tuning (`finetune`). Imports model, data and train; export and hw_sim import it."""
