"""Engine arguments (upstream: vllm/engine/arg_utils.py, ``EngineArgs`` and ``AsyncEngineArgs``).

Every field of the pinned vLLM, in its order, with its default: a keyword vLLM does not know is
a ``TypeError`` here as there, and one it knows is accepted. Defaults that upstream builds from
config classes (``CompilationConfig()``, enums) are ``None`` here; only literal defaults are part
of the contract. Upstream checks most values later, in ``create_engine_config``; the stand-in
checks the few it uses in ``AsyncLLM.from_engine_args``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class EngineArgs:
    model: str = "Qwen/Qwen3-0.6B"
    enable_return_routed_experts: bool = False
    model_weights: str = ""
    served_model_name: str | list[str] | None = None
    tokenizer: str | None = None
    hf_config_path: str | None = None
    runner: Any = "auto"
    convert: Any = "auto"
    skip_tokenizer_init: bool = False
    enable_prompt_embeds: bool = False
    tokenizer_mode: Any = "auto"
    trust_remote_code: bool = False
    allowed_local_media_path: str = ""
    allowed_media_domains: list[str] | None = None
    download_dir: str | None = None
    safetensors_load_strategy: Any = None
    safetensors_prefetch_num_threads: int = 8
    safetensors_prefetch_block_size: int = 16777216
    load_format: Any = "auto"
    config_format: str = "auto"
    dtype: Any = "auto"
    kv_cache_dtype: Any = "auto"
    seed: int = 0
    max_model_len: int = None
    cudagraph_capture_sizes: list[int] | None = None
    max_cudagraph_capture_size: int | None = None
    ir_op_priority: Any = None  # upstream: IrOpPriorityConfig
    distributed_executor_backend: Any = None
    pipeline_parallel_size: int = 1
    master_addr: str = "127.0.0.1"
    master_port: int = 29501
    nnodes: int = 1
    node_rank: int = 0
    distributed_timeout_seconds: int | None = None
    cpu_distributed_timeout_seconds: int | None = None
    numa_bind: bool = False
    numa_bind_nodes: list[int] | None = None
    numa_bind_cpus: list[str] | None = None
    device_ids: list[int | str] | None = None
    tensor_parallel_size: int = 1
    prefill_context_parallel_size: int = 1
    decode_context_parallel_size: int = 1
    dcp_comm_backend: Any = "ag_rs"
    dcp_kv_cache_interleave_size: int = 1
    cp_kv_cache_interleave_size: int = 1
    data_parallel_size: int = 1
    data_parallel_rank: int | None = None
    data_parallel_start_rank: int | None = None
    data_parallel_size_local: int | None = None
    data_parallel_address: str | None = None
    data_parallel_rpc_port: int | None = None
    data_parallel_hybrid_lb: bool = False
    data_parallel_external_lb: bool = False
    data_parallel_multi_port_external_lb: bool = False
    data_parallel_backend: Any = "mp"
    enable_expert_parallel: bool = False
    enable_ep_weight_filter: bool = False
    moe_backend: Any = "auto"
    linear_backend: Any = "auto"
    all2all_backend: Any = "allgather_reducescatter"
    enable_elastic_ep: bool = False
    enable_dbo: bool = False
    ubatch_size: int = 0
    dbo_decode_token_threshold: int = 32
    dbo_prefill_token_threshold: int = 512
    disable_nccl_for_dp_synchronization: bool | None = None
    eplb_config: Any = None  # upstream: EPLBConfig
    enable_eplb: bool = False
    expert_placement_strategy: Any = "linear"
    max_parallel_loading_workers: int | None = None
    block_size: int | None = None
    enable_prefix_caching: bool | None = None
    prefix_caching_hash_algo: Any = "sha256"
    disable_sliding_window: bool = False
    disable_cascade_attn: bool = True
    offload_backend: str = "auto"
    cpu_offload_gb: float = 0
    cpu_offload_params: set[str] = field(default_factory=set)
    offload_group_size: int = 0
    offload_num_in_group: int = 1
    offload_prefetch_step: int = 1
    offload_params: set[str] = field(default_factory=set)
    gpu_memory_utilization: float = 0.92
    kv_cache_memory_bytes: int | None = None
    max_num_batched_tokens: int | None = None
    max_num_scheduled_tokens: int | None = None
    long_prefill_token_threshold: int = 0
    max_num_seqs: int | None = None
    max_logprobs: int = 20
    logprobs_mode: Any = "raw_logprobs"
    use_fp64_gumbel: bool = False
    disable_log_stats: bool = False
    aggregate_engine_logging: bool = False
    revision: str | None = None
    code_revision: str | None = None
    hf_token: bool | str | None = None
    hf_overrides: Any = field(default_factory=dict)
    model_class_overrides: dict[str, str] = field(default_factory=dict)
    tokenizer_revision: str | None = None
    quantization: Any = None
    quantization_config: Any = None
    allow_deprecated_quantization: bool = False
    enforce_eager: bool = False
    disable_custom_all_reduce: bool = False
    language_model_only: bool = False
    limit_mm_per_prompt: dict[str, int | dict[str, int]] = field(default_factory=dict)
    enable_mm_embeds: bool = False
    interleave_mm_strings: bool = False
    media_io_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    mm_processor_kwargs: dict[str, Any] | None = None
    mm_processor_cache_gb: float = 4
    mm_processor_cache_type: Any = "lru"
    mm_hasher_algorithm: Any = None  # upstream: _get_mm_hasher_algorithm
    mm_shm_cache_max_object_size_mb: int = 128
    mm_encoder_only: bool = False
    mm_encoder_tp_mode: Any = "weights"
    mm_encoder_attn_backend: Any = None
    mm_encoder_attn_dtype: str | None = None
    mm_encoder_fp8_scale_path: str | None = None
    mm_encoder_fp8_scale_save_path: str | None = None
    mm_encoder_fp8_scale_save_margin: float = 1.5
    io_processor_plugin: str | None = None
    renderer_num_workers: int = 1
    skip_mm_profiling: bool = False
    video_pruning_rate: float | None = None
    video_pruning_method: str = "evs"
    mm_tensor_ipc: Any = "direct_rpc"
    mm_ipc_gpu_memory_gb: float = 0
    enable_lora: bool = False
    max_loras: int = 1
    max_lora_rank: Any = 16
    default_mm_loras: dict[str, str] | None = None
    fully_sharded_loras: bool = False
    max_cpu_loras: int | None = None
    lora_dtype: Any = "auto"
    lora_target_modules: list[str] | None = None
    enable_tower_connector_lora: bool = False
    specialize_active_lora: bool = False
    enable_mixed_moe_lora_format: bool = False
    enable_moe_shared_loras: bool = False
    ray_workers_use_nsight: bool = False
    num_gpu_blocks_override: int | None = None
    model_loader_extra_config: dict = field(default_factory=dict)
    ignore_patterns: str | list[str] = None  # upstream: lambda: ['original/**/*']
    enable_chunked_prefill: bool | None = None
    disable_chunked_mm_input: bool = False
    scheduler_reserve_full_isl: bool = True
    prefill_schedule_interval: int = 1
    watermark: float = 0.0
    disable_hybrid_kv_cache_manager: bool | None = None
    structured_outputs_config: Any = None  # upstream: StructuredOutputsConfig
    reasoning_parser: str = ""
    reasoning_parser_plugin: str | None = None
    speculative_config: dict[str, Any] | None = None
    spec_method: str | None = None
    spec_model: str | None = None
    spec_tokens: int | None = None
    diffusion_config: dict[str, Any] | None = None
    show_hidden_metrics_for_version: str | None = None
    otlp_traces_endpoint: str | None = None
    collect_detailed_traces: Any = None
    kv_cache_metrics: bool = False
    kv_cache_metrics_sample: float = 0.01
    cudagraph_metrics: bool = False
    enable_layerwise_nvtx_tracing: bool = False
    enable_mfu_metrics: bool = False
    enable_logging_iteration_details: bool = False
    jit_monitor_mode: Any = "warn"
    jit_monitor_verbose: bool = False
    enable_mm_processor_stats: bool = False
    scheduling_policy: Any = "fcfs"
    scheduler_cls: Any = None
    pooler_config: Any = None
    compilation_config: Any = None  # upstream: CompilationConfig
    attention_config: Any = None  # upstream: AttentionConfig
    mamba_config: Any = None  # upstream: MambaConfig
    kernel_config: Any = None  # upstream: KernelConfig
    enable_flashinfer_autotune: bool = None
    enable_bf16x3_router_gemm: bool | None = None
    worker_cls: str = "auto"
    worker_extension_cls: str = ""
    profiler_config: Any = None  # upstream: ProfilerConfig
    kv_transfer_config: Any = None
    kv_events_config: Any = None
    ec_transfer_config: Any = None
    reasoning_config: Any = None
    generation_config: str = "auto"
    enable_sleep_mode: bool = False
    enable_cumem_allocator: bool = False
    override_generation_config: dict[str, Any] = field(default_factory=dict)
    model_impl: str = "auto"
    override_attention_dtype: str | None = None
    attention_backend: Any = None
    calculate_kv_scales: bool = False
    kv_cache_dtype_skip_layers: list[str] = field(default_factory=list)
    mamba_cache_dtype: Any = "auto"
    mamba_ssm_cache_dtype: Any = "auto"
    mamba_block_size: int | None = None
    prefix_match_unit: int | None = None
    mamba_cache_mode: Any = "none"
    replayssm_buffer_len: int = 16
    use_replayssm: bool = False
    mamba_backend: Any = None  # upstream: vllm.config.mamba.MambaBackendEnum.TRITON
    mamba_ssu_algorithm: Any = None
    enable_mamba_cache_stochastic_rounding: bool = False
    mamba_cache_philox_rounds: int = 0
    additional_config: dict[str, Any] = field(default_factory=dict)
    use_tqdm_on_load: bool = True
    pt_load_map_location: str | dict[str, str] = "cpu"
    logits_processors: Any = None
    async_scheduling: bool | None = None
    stream_interval: int = 1
    kv_sharing_fast_prefill: bool = False
    optimization_level: Any = None  # upstream: vllm.config.vllm.OptimizationLevel.O2
    performance_mode: Any = "balanced"
    fault_tolerance_config: Any = None  # upstream: FaultToleranceConfig
    enable_fault_tolerance: bool = False
    kv_offloading_size: float | None = None
    kv_offloading_backend: Any = "native"
    tokens_only: bool = False
    shutdown_timeout: int = 0
    weight_transfer_config: Any = None
    fail_on_environ_validation: bool = False
    gdn_prefill_backend: Any = None
    kda_prefill_backend: Any = None


@dataclass
class AsyncEngineArgs(EngineArgs):
    enable_log_requests: bool = False
