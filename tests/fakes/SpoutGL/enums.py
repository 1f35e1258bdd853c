"""Fake ``SpoutGL.enums``: the OpenGL pixel formats the real binding re-exports as ints
(values from the OpenGL headers: GL_RGBA 0x1908, GL_RGB 0x1907, GL_BGRA_EXT 0x80E1,
GL_BGR_EXT 0x80E0)."""

GL_RGBA = 0x1908
GL_BGRA_EXT = 0x80E1
GL_RGB = 0x1907
GL_BGR_EXT = 0x80E0
