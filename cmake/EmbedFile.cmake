# cmake -DINPUT=file -DOUTPUT=file.cpp -DSYMBOL=name -DNAMESPACE=ns -P EmbedFile.cmake
# Writes OUTPUT defining `extern const unsigned char SYMBOL[]` (the bytes of INPUT, NUL-terminated) and
# `extern const std::size_t SYMBOL_size` in NAMESPACE: a file compiled into a binary, read at build time.
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n"
       bytes "${bytes}")
get_filename_component(name "${INPUT}" NAME)
file(WRITE "${OUTPUT}" "// Generated from ${name} by cmake/EmbedFile.cmake; do not edit.\n#include <cstddef>\n\n"
     "namespace ${NAMESPACE} {\nextern const unsigned char ${SYMBOL}[] = {\n${bytes}0x00};\n"
     "extern const std::size_t ${SYMBOL}_size = ${size};\n}  // namespace ${NAMESPACE}\n")
