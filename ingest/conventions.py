"""What the emitters write, as data: operation keys, attribute aliases, provider names.

Sources: the OpenTelemetry GenAI semantic conventions (current and deprecated
names), OpenLLMetry (Traceloop), OpenInference (Arize / Phoenix),
Microsoft.Extensions.AI and Semantic Kernel. In every alias list the first key
present on a span wins. `docs: ../shared/contract/otel-ingest.md`.
"""

from __future__ import annotations

# --- Which spans are model calls ------------------------------------------

# The first of these keys present on a span names its operation; a span with
# none of them is not an AI operation.
OPERATION_KEYS: tuple[str, ...] = (
    "gen_ai.operation.name",
    "llm.request.type",
    "openinference.span.kind",
)

CHAT = "Chat"
EMBEDDING = "Embedding"
SPEECH_TO_TEXT = "SpeechToText"
MEDIA = "Media"
MODERATION = "Moderation"

# (operation key, value) → capability (Umbraco.AI's enum). Values not listed,
# such as invoke_agent, execute_tool or OpenInference's AGENT and CHAIN, are
# not model calls: agent spans repeat the tokens of the calls beneath them.
MODEL_CALLS: dict[tuple[str, str], str] = {
    # Current GenAI conventions, plus Umbraco.AI's own speech_to_text.
    ("gen_ai.operation.name", "chat"): CHAT,
    ("gen_ai.operation.name", "text_completion"): CHAT,
    ("gen_ai.operation.name", "generate_content"): CHAT,
    ("gen_ai.operation.name", "embeddings"): EMBEDDING,
    ("gen_ai.operation.name", "speech_to_text"): SPEECH_TO_TEXT,
    # Image generation and moderation have no convention name yet; these are
    # the names emitters use for them.
    ("gen_ai.operation.name", "image_generation"): MEDIA,
    ("gen_ai.operation.name", "generate_image"): MEDIA,
    ("gen_ai.operation.name", "moderation"): MODERATION,
    ("gen_ai.operation.name", "moderations"): MODERATION,
    # Semantic Kernel.
    ("gen_ai.operation.name", "chat.completions"): CHAT,
    ("gen_ai.operation.name", "chat.streaming_completions"): CHAT,
    ("gen_ai.operation.name", "text.completions"): CHAT,
    ("gen_ai.operation.name", "text.streaming_completions"): CHAT,
    # OpenLLMetry before 2026.
    ("llm.request.type", "chat"): CHAT,
    ("llm.request.type", "completion"): CHAT,
    ("llm.request.type", "embedding"): EMBEDDING,
    # OpenInference.
    ("openinference.span.kind", "LLM"): CHAT,
    ("openinference.span.kind", "EMBEDDING"): EMBEDDING,
}

# Semantic Kernel names streaming in the operation instead of an attribute.
STREAMING_OPERATIONS = frozenset({"chat.streaming_completions", "text.streaming_completions"})

# --- Field aliases ---------------------------------------------------------

PROVIDER = ("gen_ai.provider.name", "gen_ai.system", "llm.vendor", "llm.provider", "llm.system")

# OpenInference puts the requested model in the `model` field of this JSON.
INVOCATION_PARAMETERS = "llm.invocation_parameters"
REQUEST_MODEL_BEFORE_INVOCATION = ("gen_ai.request.model", "llm.request.model", "llm.request.model_name")
REQUEST_MODEL_AFTER_INVOCATION = ("llm.model_name", "embedding.model_name")
# `llm.model_name` is OpenInference's answering model, so it ends this list too.
RESPONSE_MODEL = ("gen_ai.response.model", "llm.response.model", "llm.response.model_name", "llm.model_name")

INPUT_TOKENS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.usage.prompt_tokens",
    "gen_ai.response.input_tokens",  # Microsoft.Extensions.AI, 2024 to mid 2025
    "gen_ai.response.prompt_tokens",  # early Semantic Kernel
    "llm.token_count.prompt",
)
OUTPUT_TOKENS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.usage.completion_tokens",
    "gen_ai.response.output_tokens",
    "gen_ai.response.completion_tokens",
    "llm.token_count.completion",
)
TOTAL_TOKENS = ("gen_ai.usage.total_tokens", "llm.usage.total_tokens", "llm.token_count.total")
CACHE_READ_TOKENS = (
    "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_read_input_tokens",
    "llm.token_count.prompt_details.cache_read",
)
CACHE_WRITE_TOKENS = (
    "gen_ai.usage.cache_write.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "gen_ai.usage.cache_creation_input_tokens",
    "llm.token_count.prompt_details.cache_write",
)
REASONING_TOKENS = (
    "gen_ai.usage.reasoning.output_tokens",
    "gen_ai.usage.reasoning_tokens",
    "llm.token_count.completion_details.reasoning",
)

ERROR_TYPE = "error.type"
STREAMING = ("gen_ai.request.stream", "gen_ai.is_streaming", "llm.is_streaming")
CONVERSATION = ("gen_ai.conversation.id", "session.id")
SERVER_ADDRESS = "server.address"
SERVICE_NAME = "service.name"

EXCEPTION_EVENT = "exception"
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"

# --- Provider names --------------------------------------------------------

# Lower-cased emitter spellings → current semantic-convention values. Names not
# listed pass through lower-cased, so Umbraco.AI's own provider ids (openai,
# anthropic, google, amazon, microsoft-foundry, ...) come through unchanged.
PROVIDER_NAMES: dict[str, str] = {
    "az.ai.openai": "azure.ai.openai",
    "azure_openai": "azure.ai.openai",
    "azure-openai": "azure.ai.openai",
    "azureopenai": "azure.ai.openai",
    "az.ai.inference": "azure.ai.inference",
    "azure_ai_inference": "azure.ai.inference",
    "vertex_ai": "gcp.vertex_ai",
    "vertexai": "gcp.vertex_ai",
    "vertex": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "google_genai": "gcp.gen_ai",
    "google.genai": "gcp.gen_ai",
    "xai": "x_ai",
    "x.ai": "x_ai",
    "mistralai": "mistral_ai",
    "mistral": "mistral_ai",
    "aws": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "aws_bedrock": "aws.bedrock",
    "aws-bedrock": "aws.bedrock",
    "watsonx": "ibm.watsonx.ai",
    "ibm": "ibm.watsonx.ai",
}


def normalise_provider(raw: str) -> str:
    lowered = raw.strip().lower()
    return PROVIDER_NAMES.get(lowered, lowered)
