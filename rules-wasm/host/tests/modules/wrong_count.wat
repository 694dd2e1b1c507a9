;; Hostile: answers exactly one decision whatever the number of records.
(module
  (memory (export "memory") 1)
  (func (export "erasure_abi_version") (result i32) (i32.const 1))
  ;; Input goes to 1024; test inputs are small.
  (func (export "alloc") (param i32) (result i32) (i32.const 1024))
  (data (i32.const 0) "{\"decisions\":[{\"action\":\"erase\"}]}")
  (func (export "evaluate") (param i32 i32) (result i64)
    (i64.const 34))) ;; pointer 0, length 34
