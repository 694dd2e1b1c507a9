;; Hostile: claims a 4 GiB answer. The host must refuse before reading.
(module
  (memory (export "memory") 1)
  (func (export "erasure_abi_version") (result i32) (i32.const 1))
  ;; Input goes to 1024; test inputs are small.
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "evaluate") (param i32 i32) (result i64)
    (i64.const 0xffffffff))) ;; pointer 0, length 4294967295
