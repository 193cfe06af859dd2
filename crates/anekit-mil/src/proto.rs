//! Lossless conversion between the IR and the MIL protobuf (`MILSpec`).
