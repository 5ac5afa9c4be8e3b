//! picam display stage: SDL2 window and headless picture sinks
