;; Speaks a future ABI version; the host must refuse it at installation.
(module
  (memory (export "memory") 1)
  (func (export "erasure_abi_version") (result i32) (i32.const 2))
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "evaluate") (param i32 i32) (result i64) (i64.const 0)))
