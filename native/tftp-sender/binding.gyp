{
  "targets": [
    {
      "target_name": "tftp_sender",
      "sources": ["tftp_sender.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
