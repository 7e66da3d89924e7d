"""The online CA (`mtlskit ca serve`): its protocol (pure), server, client and renewal."""
