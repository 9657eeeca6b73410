"""The web layer: seekable streaming, the example apps over real HTTP, the plugin in web tests."""
