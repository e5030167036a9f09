// The Catch2 main, compiled once and linked into every test binary (it is slow to compile).
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
