"""Defaults of the public contract (design.md), shared by every service."""

KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
DATABASE_URL = "postgresql://broadcast@127.0.0.1:5432/broadcast"
KIRIM_BASE_URL = "http://127.0.0.1:8090/v1"
KIRIM_API_KEY = "kdv_live_sandboxsandboxsandbox000"  # kdv_live_ + 24 URL-safe chars
KIRIM_WEBHOOK_SECRETS = "whsec_sandbox_default_secret"
QUOTA_WINDOW_SECONDS = 86_400

REQUESTS_TOPIC = "broadcast.requests"
REQUESTS_DLQ_TOPIC = "broadcast.requests.dlq"
STATUS_TOPIC = "kirim.message-status"
CONSUMER_GROUP = "broadcast-consumer"
PROJECTOR_GROUP = "broadcast-projector"

WEBHOOK_BRIDGE_PORT = 8081
WEBHOOK_PATH = "/kirim-hook"
SANDBOX_PORT = 8090
SANDBOX_WEBHOOK_URL = "http://127.0.0.1:8081/kirim-hook"
CONSUMER_METRICS_PORT = 9101
PROJECTOR_METRICS_PORT = 9102
CONSOLE_PORT = 8095
BIND_HOST = "127.0.0.1"

DEFAULT_PHONE_NUMBER_ID = "106540352242922"
DEFAULT_TEMPLATE = "promo_flash_sale"
DEFAULT_TEMPLATE_LANGUAGE = "id_ID"
