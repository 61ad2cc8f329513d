/* The base Qwen2 vocabulary GGUF, embedded so that make-model works without the engine tree. */
    .section .rodata
    .balign 32
    .global drivevqa_qwen2_vocab_begin
drivevqa_qwen2_vocab_begin:
    .incbin DRIVEVQA_QWEN2_VOCAB_PATH
    .global drivevqa_qwen2_vocab_end
drivevqa_qwen2_vocab_end:
    .section .note.GNU-stack,"",@progbits
