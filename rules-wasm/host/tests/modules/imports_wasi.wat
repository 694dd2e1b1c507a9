;; Hostile: wants WASI to write to a file descriptor. Rule modules get no
;; imports at all, so installation must be refused naming this import.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "erasure_abi_version") (result i32) (i32.const 1))
  ;; Input goes to 1024; test inputs are small.
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "evaluate") (param i32 i32) (result i64)
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0)))
    (i64.const 0)))
